//! LogME against a reference value from the authors' fixed-point algorithm
//! (tests/fixtures/logme.json, made by scripts/make-logme-fixture.py).
use ndarray::Array2;
use proxal::al::logme;

#[derive(serde::Deserialize)]
struct Fixture {
    n: usize,
    d: usize,
    n_classes: usize,
    features: Vec<Vec<f32>>,
    labels: Vec<u32>,
    logme: f64,
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/logme.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn logme_matches_the_reference_fixture() {
    let f = fixture();
    let x = Array2::from_shape_vec((f.n, f.d), f.features.concat()).unwrap();
    let got = logme(x.view(), &f.labels, f.n_classes).unwrap();
    assert!(
        (got - f.logme).abs() < 1e-6,
        "logme {got} vs reference {}",
        f.logme
    );
}

#[test]
fn logme_prefers_features_that_separate_the_classes() {
    // 60 rows, 3 classes, 5 dims: deterministic "noise" from a formula, plus a class signal.
    let (n, d, c) = (60usize, 5usize, 3usize);
    let y: Vec<u32> = (0..n as u32).map(|i| i % c as u32).collect();
    let noise = Array2::from_shape_fn((n, d), |(i, j)| ((i * 31 + j * 17) as f32 * 0.61).sin());
    let mut signal = noise.clone();
    for i in 0..n {
        signal[[i, y[i] as usize]] += 2.0;
    }
    let good = logme(signal.view(), &y, c).unwrap();
    let bad = logme(noise.view(), &y, c).unwrap();
    assert!(good > bad + 0.1, "{good} should clearly beat {bad}");
    // Bad input is an error, not NaN.
    let mut nan = signal.clone();
    nan[[0, 0]] = f32::NAN;
    assert!(logme(nan.view(), &y, c).is_err());
    assert!(logme(signal.view(), &y[1..], c).is_err());
}
