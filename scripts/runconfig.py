"""The head of a run config the experiment generators share (scripts/make-*-configs.py): one
place for the keys every experiment sets the same way."""


def head(comment, name, dataset, policy, seed, strategy, batch, rounds, initial=200):
    """`# comment`, then the top-level keys of a run config (initial labels, batches, a logreg
    proxy, evaluation every round with a linear probe, 64-token embeddings)."""
    return f"""# {comment}
name = "{name}"
dataset = "{dataset}"
policy = "{policy}"
seed = {seed}
initial = {initial}
batch = {batch}
rounds = {rounds}
strategy = "{strategy}"
proxy = "logreg"
eval_every = 1
eval_model = "linear-probe"
embed_max_len = 64
"""


# The [train] table of the suite and full-pool experiments.
TRAIN = """
[train]
epochs = 3
batch_size = 16
max_len = 64
"""


def grid(root, datasets, groups, variants, seeds):
    """Every config of an experiment grid, as (path, dataset, group, strategy, seed, tag, policy,
    the group's [asvp] lines or None), creating root/<dataset>/. A group named in `variants` is an
    asvp variant; any other group is its own policy. The tag (the file and run name's middle) is
    the group and its strategy, or just "random"."""
    for ds in datasets:
        d = root / ds
        d.mkdir(parents=True, exist_ok=True)
        for group, strategy in groups:
            policy = "asvp" if group in variants else group
            tag = group if group == "random" else f"{group}-{strategy}"
            for seed in seeds:
                yield d / f"{tag}-s{seed}.toml", ds, group, strategy, seed, tag, policy, variants.get(group)
