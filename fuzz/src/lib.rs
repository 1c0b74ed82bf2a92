//! Placeholder until the fuzzing issue adds `fuzz_targets/`.
