use std::{net::IpAddr, time::Duration};

use hickory_resolver::net::NetError;
use tokio::time::Instant;

use super::{Answer, LookupError, Schedule};

fn answer(addrs: &[&str], ttl_secs: u64) -> Result<Answer, LookupError> {
    Ok(Answer {
        addrs: addrs.iter().map(|a| a.parse().expect("ip")).collect(),
        ttl: Duration::from_secs(ttl_secs),
    })
}

fn timeout() -> Result<Answer, LookupError> {
    Err(LookupError::Failed(NetError::Timeout))
}

fn addrs(schedule: &Schedule, name: &str) -> Vec<IpAddr> {
    schedule.resolved().addrs(name).to_vec()
}

#[test]
fn a_new_name_is_due_at_once_and_then_after_its_ttl() {
    let now = Instant::now();
    let mut schedule = Schedule::default();
    assert!(!schedule.track(["api.example.test"].into_iter(), now));
    assert_eq!(schedule.due(now), ["api.example.test"]);
    assert!(schedule.record(
        "api.example.test",
        &answer(&["10.0.0.2", "10.0.0.1"], 30),
        now
    ));
    assert_eq!(
        addrs(&schedule, "api.example.test"),
        [
            "10.0.0.1".parse::<IpAddr>().expect("ip"),
            "10.0.0.2".parse().expect("ip")
        ]
    );
    assert!(schedule.due(now + Duration::from_secs(29)).is_empty());
    assert_eq!(schedule.next_due(), Some(now + Duration::from_secs(30)));
    assert!(
        !schedule.record(
            "api.example.test",
            &answer(&["10.0.0.1", "10.0.0.2"], 30),
            now
        ),
        "the same addresses in another order are no change"
    );
}

#[test]
fn ttls_are_kept_between_one_second_and_five_minutes() {
    let now = Instant::now();
    let mut schedule = Schedule::default();
    schedule.track(["a.test", "b.test"].into_iter(), now);
    schedule.record("a.test", &answer(&["10.0.0.1"], 0), now);
    schedule.record("b.test", &answer(&["10.0.0.2"], 86_400), now);
    assert_eq!(schedule.due(now + Duration::from_secs(1)), ["a.test"]);
    assert_eq!(
        schedule.due(now + Duration::from_secs(300)),
        ["a.test", "b.test"]
    );
}

#[test]
fn failures_back_off_and_keep_the_last_addresses() {
    let now = Instant::now();
    let mut schedule = Schedule::default();
    schedule.track(["api.example.test"].into_iter(), now);
    schedule.record("api.example.test", &answer(&["10.0.0.1"], 10), now);
    let mut at = now + Duration::from_secs(10);
    let mut waits = Vec::new();
    for _ in 0..7 {
        assert!(!schedule.record("api.example.test", &timeout(), at));
        let next = schedule.next_due().expect("due");
        waits.push((next - at).as_secs());
        at = next;
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(
        addrs(&schedule, "api.example.test").len(),
        1,
        "kept through failures"
    );
    assert!(schedule.record("api.example.test", &answer(&["10.0.0.9"], 10), at));
    assert_eq!(
        schedule.next_due(),
        Some(at + Duration::from_secs(10)),
        "backoff reset"
    );
}

#[test]
fn no_records_empties_the_name() {
    let now = Instant::now();
    let mut schedule = Schedule::default();
    schedule.track(["gone.example.test"].into_iter(), now);
    schedule.record("gone.example.test", &answer(&["10.0.0.1"], 10), now);
    let nxdomain = Err(LookupError::NoRecords(NetError::Timeout));
    assert!(schedule.record("gone.example.test", &nxdomain, now));
    assert!(addrs(&schedule, "gone.example.test").is_empty());
    assert_eq!(schedule.next_due(), Some(now + Duration::from_secs(1)));
}

#[test]
fn names_no_longer_wanted_are_forgotten() {
    let now = Instant::now();
    let mut schedule = Schedule::default();
    schedule.track(["a.test", "b.test"].into_iter(), now);
    schedule.record("a.test", &answer(&["10.0.0.1"], 10), now);
    assert!(
        !schedule.track(["a.test"].into_iter(), now),
        "b had no addresses"
    );
    assert!(
        schedule.track(["b.test"].into_iter(), now),
        "a had addresses"
    );
    assert_eq!(schedule.due(now), ["b.test"]);
    assert!(addrs(&schedule, "a.test").is_empty());
}
