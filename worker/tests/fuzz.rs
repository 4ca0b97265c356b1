//! A fixed slice of the fuzz loops (`cargo bench -p monteur-worker --bench
//! fuzz` runs 100 000 cases per target): no panic, no wrong answer.

#![allow(clippy::unwrap_used)]

#[path = "support/fuzz_targets.rs"]
mod targets;

fn quiet<T>(f: impl FnOnce() -> T) -> T {
    // The loops count panics themselves; their messages would flood the log.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = f();
    std::panic::set_hook(hook);
    out
}

#[test]
fn the_message_verifier_survives_mutated_envelopes() {
    let t = quiet(|| targets::verifier(3000, 11));
    assert_eq!((t.panics, t.wrong), (0, 0), "{t:?}");
    assert!(t.accepted < t.cases, "{t:?}");
}

#[test]
fn signed_hostile_jobs_stay_inside_their_tenant() {
    let t = quiet(|| targets::signed_jobs(3000, 14));
    assert_eq!((t.panics, t.wrong), (0, 0), "{t:?}");
    assert!(t.accepted > 0, "{t:?}");
}

#[test]
fn arbitrary_hostile_jobs_stay_inside_their_tenant() {
    let t = quiet(|| targets::arbitrary_jobs(3000, 15));
    assert_eq!((t.panics, t.wrong), (0, 0), "{t:?}");
    assert!(t.cases > 2000 && t.accepted > 0, "{t:?}");
}

#[test]
fn the_header_parser_survives_mutated_headers() {
    let t = quiet(|| targets::headers(3000, 12));
    assert_eq!((t.panics, t.wrong), (0, 0), "{t:?}");
}

#[test]
fn ranged_decryption_is_exact_or_refuses() {
    let t = quiet(|| targets::ranges(1500, 13));
    assert_eq!((t.panics, t.wrong), (0, 0), "{t:?}");
    assert!(t.accepted > 0, "{t:?}");
}
