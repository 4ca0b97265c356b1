//! Client-side encryption throughput on one core, against the physical limit
//! of the same primitive in the same run: the segmented AEAD
//! (`monteur_worker::crypto::stream`, AES-256-GCM per 1 MiB segment, header,
//! per-object data key) against one raw AES-256-GCM call over the same
//! 256 MiB buffer (aws-lc, the library both use).
//!
//! Run: `cargo bench -p monteur-benches --bench aead`

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use monteur_benches::timing;
use monteur_worker::crypto::stream;
use monteur_worker::crypto::{Key, KeyProvider, Keyring};

const MIB: usize = 1 << 20;
const SIZE: usize = 256 * MIB;
const RUNS: usize = 5;

fn main() -> ExitCode {
    monteur_benches::finish(run())
}

fn mbps(t: Duration) -> f64 {
    SIZE as f64 / MIB as f64 / t.as_secs_f64()
}

fn run() -> Result<(), String> {
    let plain: Vec<u8> = (0..SIZE).map(|i| (i * 131 % 251) as u8).collect();
    let mut ring = Keyring::default();
    ring.add_tenant_key("bench", Key::new("bench-1", [3; 32]), true)
        .map_err(|e| e.to_string())?;
    let key = ring.active_key("bench").map_err(|e| e.to_string())?;

    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[3; 32]).map_err(|e| e.to_string())?);
    let (raw_seal, _) = timing::best_of(RUNS, || {
        let mut buf = plain.clone();
        let tag = raw
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([1; 12]),
                Aad::empty(),
                &mut buf,
            )
            .map(|t| t.as_ref().len());
        (buf.len(), tag)
    });
    // Both produce ciphertext in a new buffer from borrowed plaintext: the
    // raw call copies then encrypts in place, the segmented one copies each
    // segment into its output and encrypts it there.
    let at = stream::Location {
        bucket: "bench",
        key: "tenants/bench/render.mp4",
        tenant: "bench",
    };
    let (ours_seal, sealed) = timing::best_of(RUNS, || {
        stream::seal(key, stream::DEFAULT_SEGMENT, &plain, &at)
    });
    let sealed = sealed.map_err(|e| e.to_string())?;
    let (ours_open, opened) = timing::best_of(RUNS, || stream::open(&sealed, &at, &ring));
    if opened.map_err(|e| e.to_string())? != plain {
        return Err("round trip failed".into());
    }
    let overhead = (sealed.len() - SIZE) as f64 / SIZE as f64 * 100.0;
    println!(
        "256 MiB, one thread, best of {RUNS}; segmented AEAD: 1 MiB segments (size overhead {overhead:.4}%)\n"
    );
    println!("| operation | MiB/s | vs raw AES-256-GCM |");
    println!("|---|---:|---:|");
    println!(
        "| raw AES-256-GCM seal, one call (aws-lc) | {:.0} | 1.00x |",
        mbps(raw_seal)
    );
    println!(
        "| monteur segmented AEAD seal | {:.0} | {:.2}x |",
        mbps(ours_seal),
        mbps(ours_seal) / mbps(raw_seal)
    );
    println!(
        "| monteur segmented AEAD open (authenticate + decrypt) | {:.0} | {:.2}x |",
        mbps(ours_open),
        mbps(ours_open) / mbps(raw_seal)
    );
    Ok(())
}
