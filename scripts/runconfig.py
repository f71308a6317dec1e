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
