//! Calendar and sliding windows against real time-zone rules. Every instant
//! is written in UTC with the local time it stands for in a comment.

use ccgate_quota::Window;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn hours(start: Timestamp, end: Timestamp) -> i64 {
    end.duration_since(start).as_hours()
}

#[test]
fn daily_starts_at_local_midnight_west_of_utc() {
    // 2026-03-03 20:00 in New York (EST, -05:00) is already the 4th in UTC.
    let now = at("2026-03-04T01:00:00Z");
    let bounds = Window::Daily.bounds(now, &tz("America/New_York"));
    assert_eq!(bounds.start, at("2026-03-03T05:00:00Z"));
    assert_eq!(bounds.resets_at, Some(at("2026-03-04T05:00:00Z")));
}

#[test]
fn daily_starts_at_local_midnight_east_of_utc() {
    // 2026-03-04 08:30 in Tokyo (+09:00) is still the 3rd in UTC.
    let now = at("2026-03-03T23:30:00Z");
    let bounds = Window::Daily.bounds(now, &tz("Asia/Tokyo"));
    assert_eq!(bounds.start, at("2026-03-03T15:00:00Z"));
    assert_eq!(bounds.resets_at, Some(at("2026-03-04T15:00:00Z")));
}

#[test]
fn daily_window_never_spans_more_than_one_local_day_around_midnight() {
    // The peer's daily window covered 48 h on Node 20. One minute before and
    // one minute after local midnight must land in different, 24 h days.
    let berlin = tz("Europe/Berlin");
    let before = Window::Daily.bounds(at("2026-06-10T21:59:00Z"), &berlin); // 23:59 CEST
    let after = Window::Daily.bounds(at("2026-06-10T22:01:00Z"), &berlin); // 00:01 CEST
    assert_eq!(before.resets_at, Some(after.start));
    assert_eq!(after.start, at("2026-06-10T22:00:00Z"));
    assert_eq!(hours(before.start, before.resets_at.unwrap()), 24);
    assert_eq!(hours(after.start, after.resets_at.unwrap()), 24);
}

#[test]
fn spring_forward_day_is_23_hours() {
    // Europe/Berlin moves 02:00 → 03:00 on 2026-03-29.
    let bounds = Window::Daily.bounds(at("2026-03-29T12:00:00Z"), &tz("Europe/Berlin"));
    assert_eq!(bounds.start, at("2026-03-28T23:00:00Z")); // 00:00 CET
    assert_eq!(bounds.resets_at, Some(at("2026-03-29T22:00:00Z"))); // 00:00 CEST
    assert_eq!(hours(bounds.start, bounds.resets_at.unwrap()), 23);
}

#[test]
fn fall_back_day_is_25_hours() {
    // America/New_York moves 02:00 → 01:00 on 2026-11-01.
    let bounds = Window::Daily.bounds(at("2026-11-01T15:00:00Z"), &tz("America/New_York"));
    assert_eq!(bounds.start, at("2026-11-01T04:00:00Z")); // 00:00 EDT
    assert_eq!(bounds.resets_at, Some(at("2026-11-02T05:00:00Z"))); // 00:00 EST
    assert_eq!(hours(bounds.start, bounds.resets_at.unwrap()), 25);
}

#[test]
fn a_day_without_midnight_starts_when_the_clock_jumps() {
    // America/Santiago skips 00:00 → 01:00 on 2026-09-06: the day starts at 01:00.
    let santiago = tz("America/Santiago");
    let bounds = Window::Daily.bounds(at("2026-09-06T15:00:00Z"), &santiago);
    let start = bounds.start.to_zoned(santiago);
    assert_eq!((start.hour(), start.minute(), start.day()), (1, 0, 6));
    assert_eq!(hours(bounds.start, bounds.resets_at.unwrap()), 23);
}

#[test]
fn weekly_starts_on_monday() {
    let utc = tz("UTC");
    // Monday 2026-03-02 00:00 itself.
    let monday = Window::Weekly.bounds(at("2026-03-02T00:00:00Z"), &utc);
    assert_eq!(monday.start, at("2026-03-02T00:00:00Z"));
    assert_eq!(monday.resets_at, Some(at("2026-03-09T00:00:00Z")));
    // Sunday 2026-03-08 23:59 still belongs to the week of Monday the 2nd
    // (the peer started weeks on Sunday).
    let sunday = Window::Weekly.bounds(at("2026-03-08T23:59:00Z"), &utc);
    assert_eq!(sunday.start, at("2026-03-02T00:00:00Z"));
}

#[test]
fn weekly_uses_the_local_weekday() {
    // Monday 2026-03-09 07:00 in Sydney (+11:00) is Sunday in UTC.
    let bounds = Window::Weekly.bounds(at("2026-03-08T20:00:00Z"), &tz("Australia/Sydney"));
    assert_eq!(bounds.start, at("2026-03-08T13:00:00Z")); // Mon 00:00 AEDT
}

#[test]
fn weekly_across_a_dst_change_is_167_hours() {
    let bounds = Window::Weekly.bounds(at("2026-03-26T12:00:00Z"), &tz("Europe/Berlin"));
    assert_eq!(bounds.start, at("2026-03-22T23:00:00Z"));
    assert_eq!(hours(bounds.start, bounds.resets_at.unwrap()), 167);
}

#[test]
fn monthly_starts_on_the_first_and_handles_year_end() {
    let bounds = Window::Monthly.bounds(at("2026-12-31T23:30:00Z"), &tz("UTC"));
    assert_eq!(bounds.start, at("2026-12-01T00:00:00Z"));
    assert_eq!(bounds.resets_at, Some(at("2027-01-01T00:00:00Z")));
    // In Auckland (+13:00) that instant is already 1 January.
    let auckland = Window::Monthly.bounds(at("2026-12-31T23:30:00Z"), &tz("Pacific/Auckland"));
    assert_eq!(auckland.start, at("2026-12-31T11:00:00Z"));
}

#[test]
fn monthly_in_february_of_a_leap_year() {
    let bounds = Window::Monthly.bounds(at("2028-02-29T12:00:00Z"), &tz("UTC"));
    assert_eq!(bounds.start, at("2028-02-01T00:00:00Z"));
    assert_eq!(bounds.resets_at, Some(at("2028-03-01T00:00:00Z")));
    assert_eq!(hours(bounds.start, bounds.resets_at.unwrap()), 29 * 24);
}

#[test]
fn leap_day_is_its_own_day() {
    let bounds = Window::Daily.bounds(at("2028-02-29T23:59:59Z"), &tz("UTC"));
    assert_eq!(bounds.start, at("2028-02-29T00:00:00Z"));
    assert_eq!(bounds.resets_at, Some(at("2028-03-01T00:00:00Z")));
}

#[test]
fn zones_with_half_and_quarter_hour_offsets() {
    // Kathmandu is +05:45; India +05:30.
    let nepal = Window::Daily.bounds(at("2026-05-01T12:00:00Z"), &tz("Asia/Kathmandu"));
    assert_eq!(nepal.start, at("2026-04-30T18:15:00Z"));
    let india = Window::Daily.bounds(at("2026-05-01T12:00:00Z"), &tz("Asia/Kolkata"));
    assert_eq!(india.start, at("2026-04-30T18:30:00Z"));
}

#[test]
fn sliding_windows_are_fixed_lengths_without_reset() {
    let now = at("2026-03-29T12:00:00Z");
    let berlin = tz("Europe/Berlin");
    for (window, length) in [
        (Window::Sliding24h, 24),
        (Window::Rolling5h, 5),
        (Window::Sliding7d, 168),
    ] {
        let bounds = window.bounds(now, &berlin);
        assert_eq!(
            bounds.start,
            now - SignedDuration::from_hours(length),
            "{window}"
        );
        assert_eq!(bounds.resets_at, None);
    }
}

#[test]
fn window_names_round_trip() {
    for window in Window::ALL {
        assert_eq!(window.as_str().parse::<Window>().unwrap(), window);
        let json = serde_json::to_string(&window).unwrap();
        assert_eq!(serde_json::from_str::<Window>(&json).unwrap(), window);
    }
    assert!("hourly".parse::<Window>().is_err());
}
