//! Compile-time behaviour of `nas_search!`: every error it can raise has a
//! case under tests/ui/fail with its .stderr snapshot (the message and the
//! token it points at); tests/ui/pass holds specs that must compile and run.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
