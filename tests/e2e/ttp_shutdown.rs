//! The TTP stops promptly on SIGTERM while an HSP follows its revocation
//! feed (a response stream that never ends by itself): the feed ends, the
//! TTP exits with status 0 within a few seconds, and the HSP carries on as
//! in any TTP outage, saying so on `/readyz`.

use std::time::{Duration, Instant};

use crate::processes::terminate;
use crate::ttp_outage::{admin, readyz, start_hsp, start_ttp, wait_until, Ports};

#[test]
fn the_ttp_stops_promptly_while_an_hsp_follows_its_feed() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let dir = scratch.path();
    let ports = Ports::free();
    let ttp = start_ttp(dir, ports.ttp);
    let token = admin(
        dir,
        &ports,
        &["create-token", "--role", "hsp", "--subject", "hsp.outage"],
    )
    .expect("create-token");
    let mut hsp = start_hsp(dir, &ports, Some(&token), "hsp.log");
    // Ready: the HSP holds the trust bundle and its feed is open.
    wait_until("the HSP ready", Duration::from_secs(30), || {
        readyz(ports.ops).0 == 200
    });

    let asked = Instant::now();
    let status = terminate(ttp);
    let took = asked.elapsed();
    assert!(status.success(), "the TTP's exit: {status}");
    assert!(
        took < Duration::from_secs(5),
        "the TTP took {took:?} to stop after SIGTERM"
    );
    eprintln!("the TTP stopped {took:?} after SIGTERM");

    // The HSP, as when the TTP is down: running, not ready, naming the link.
    wait_until(
        "the HSP's /readyz naming the TTP link",
        Duration::from_secs(15),
        || {
            let (status, body) = readyz(ports.ops);
            status == 503 && body.contains("ttp-link")
        },
    );
    assert!(
        hsp.try_wait().expect("wait").is_none(),
        "the HSP keeps running without its TTP"
    );
    assert!(terminate(hsp).success());
}
