//! What sealing personal fields costs per value, and so per households page and per visit:
//! `cargo bench --bench sealing` (release), or `cargo bench --bench sealing --profile dev`
//! (the crypto crates are optimised in the dev profile too). Prints one line per measure; the
//! figures and what they mean for the suite's pages are in benches/README.md.

use std::hint::black_box;
use std::time::Instant;

use gridlight::db::keys::{DataKey, HOUSEHOLD_PHONE, KeyRing, MEMBER_ID_NUMBER};

/// Nanoseconds per call of `f`, the median of 7 runs of `n` calls.
fn ns_per(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for i in 0..n {
                f(i);
            }
            started.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[3]
}

fn main() {
    let keys = KeyRing::parse(&format!("{},{}", DataKey::generate(), DataKey::generate())).expect("keys");
    let n = 200_000;
    let ids: Vec<String> = (0..1000).map(|i| format!("0193a6f0-0000-7000-8000-{i:012}")).collect();
    let phones: Vec<String> = ids.iter().map(|id| keys.seal(HOUSEHOLD_PHONE, id, "13912345678")).collect();
    let seal = ns_per(n, |i| {
        black_box(keys.seal(MEMBER_ID_NUMBER, &ids[(i % 1000) as usize], black_box("11010519491231002X")));
    });
    let open = ns_per(n, |i| {
        let i = (i % 1000) as usize;
        black_box(keys.open(HOUSEHOLD_PHONE, &ids[i], &phones[i]).expect("opens"));
    });
    let blind = ns_per(n, |_| {
        black_box(keys.blind(MEMBER_ID_NUMBER, black_box("11010519491231002X")));
    });
    let lookup = ns_per(n, |_| {
        black_box(keys.blinds(MEMBER_ID_NUMBER, black_box("11010519491231002X")));
    });
    let page = ns_per(2_000, |_| {
        for i in 0..50 {
            black_box(keys.open(HOUSEHOLD_PHONE, &ids[i], &phones[i]).expect("opens"));
        }
    });
    println!("seal one value (AES-256-GCM, fresh nonce)   {seal:>9.0} ns");
    println!("open one value                               {open:>9.0} ns");
    println!("blind index of one value (HMAC-SHA256)       {blind:>9.0} ns");
    println!("lookup indexes under 2 keys                  {lookup:>9.0} ns");
    println!("households page of 50 (50 phones opened)     {:>9.1} µs", page / 1000.0);
    println!(
        "POST /visits (the household's phone opened)  {open:>9.0} ns; a member create (2 seals, 2 indexes) {:.1} µs",
        (2.0 * seal + 2.0 * blind) / 1000.0
    );
}
