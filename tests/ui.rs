//! Compile tests of `#[cached]` and `#[invalidates]`.
//!
//! `tests/ui/pass` must compile and run (each `main` asserts the caching
//! behaviour it shows); `tests/ui/fail` must fail to compile with exactly
//! the errors pinned in the `.stderr` next to each file. Regenerate those
//! with `TRYBUILD=overwrite cargo test --test ui`, then read the diff: each
//! file holds one mistake and should show one error, on the right token.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
