# Common tasks. `just` is optional: every recipe is a plain cargo command.

# The main job: every method on the embedded synthetic benchmark, quick preset.
main:
    cargo run --release -p dgcolor-cli -- compare --preset quick

# The test suite (what CI runs).
test:
    cargo test --workspace --release

# The embedded synthetic benchmark at its default size.
synth out="data/synth/default":
    cargo run --release -p dgcolor-cli -- data synth --out {{out}}

# Lint and format checks.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
