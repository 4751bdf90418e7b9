//! Budget and quota windows: anchored at `startAt` in the owner's IANA timezone, advancing by
//! calendar periods computed from the anchor (DAILY +1 day, WEEKLY +7 days, MONTHLY +1 month,
//! QUARTERLY +3 months), clamped to the month's end (anchor 31 Jan → 28/29 Feb → 31 Mar), following
//! local wall time across DST shifts. No window exists before `startAt` or from `endAt` on.

use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::domain::BudgetPeriod;

/// When a budget or quota applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The anchor: the first window starts here.
    pub start_at: DateTime<Utc>,
    /// The time zone calendar periods (days, months) are counted in.
    pub timezone: Tz,
    /// How long each window lasts.
    pub period: BudgetPeriod,
    /// When the rule stops applying (no window starts at or after it).
    pub end_at: Option<DateTime<Utc>>,
}

/// One accounting window: `[start, end)`. `index` counts windows from the anchor (0 = first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The window's position counted from the anchor.
    pub index: u32,
    /// Inclusive start.
    pub start: DateTime<Utc>,
    /// Exclusive end.
    pub end: DateTime<Utc>,
}

impl Schedule {
    /// The window containing `now`, if the schedule is running then.
    pub fn window_at(&self, now: DateTime<Utc>) -> Option<Window> {
        if now < self.start_at || self.end_at.is_some_and(|end| now >= end) {
            return None;
        }
        let anchor = self.start_at.with_timezone(&self.timezone).naive_local();
        // Jump close with an estimate from the average period length, then walk to the exact window.
        let average_secs: i64 = match self.period {
            BudgetPeriod::Daily => 86_400,
            BudgetPeriod::Weekly => 7 * 86_400,
            BudgetPeriod::Monthly => 2_629_746,
            BudgetPeriod::Quarterly => 7_889_238,
        };
        let elapsed = (now - self.start_at).num_seconds().max(0);
        let mut index = u32::try_from(elapsed / average_secs)
            .unwrap_or(u32::MAX)
            .saturating_sub(1);
        while index > 0 && self.boundary(anchor, index)? > now {
            index -= 1;
        }
        loop {
            let next = self.boundary(anchor, index.checked_add(1)?)?;
            if next > now {
                let start = self.boundary(anchor, index)?;
                let end = self.end_at.map_or(next, |end_at| next.min(end_at));
                return Some(Window { index, start, end });
            }
            index += 1;
        }
    }

    /// The UTC instant where window `index` starts.
    fn boundary(&self, anchor: NaiveDateTime, index: u32) -> Option<DateTime<Utc>> {
        if index == 0 {
            return Some(self.start_at);
        }
        let local = match self.period {
            BudgetPeriod::Daily => anchor.checked_add_days(Days::new(u64::from(index)))?,
            BudgetPeriod::Weekly => anchor.checked_add_days(Days::new(7 * u64::from(index)))?,
            // chrono clamps to the month's last day, computed from the anchor each time.
            BudgetPeriod::Monthly => anchor.checked_add_months(Months::new(index))?,
            BudgetPeriod::Quarterly => {
                anchor.checked_add_months(Months::new(index.checked_mul(3)?))?
            }
        };
        Some(to_utc(&self.timezone, local))
    }
}

/// Local wall time → UTC. In a DST fall-back overlap the earlier instant is used; a time that does
/// not exist (spring-forward gap) moves to the first instant after the gap.
fn to_utc(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earliest, _) => earliest.with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are at most a few hours; walk forward minute by minute to the first valid time.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += chrono::Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

/// `true` when `day` is the last day of its month (useful in tests and displays).
pub fn is_month_end(day: chrono::NaiveDate) -> bool {
    day.checked_add_days(Days::new(1))
        .is_some_and(|next| next.month() != day.month())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn schedule(start: DateTime<Utc>, tz: Tz, period: BudgetPeriod) -> Schedule {
        Schedule {
            start_at: start,
            timezone: tz,
            period,
            end_at: None,
        }
    }

    #[test]
    fn daily_and_weekly_windows_follow_the_anchor() {
        let s = schedule(utc(2026, 1, 1, 9, 30), chrono_tz::UTC, BudgetPeriod::Daily);
        assert_eq!(s.window_at(utc(2026, 1, 1, 9, 29)), None);
        let w = s.window_at(utc(2026, 1, 3, 12, 0)).unwrap();
        assert_eq!(
            (w.index, w.start, w.end),
            (2, utc(2026, 1, 3, 9, 30), utc(2026, 1, 4, 9, 30))
        );
        let w = s.window_at(utc(2026, 1, 4, 9, 30)).unwrap();
        assert_eq!(w.start, utc(2026, 1, 4, 9, 30));

        let s = schedule(utc(2026, 1, 5, 0, 0), chrono_tz::UTC, BudgetPeriod::Weekly);
        let w = s.window_at(utc(2026, 3, 1, 0, 0)).unwrap();
        assert_eq!(
            (w.start, w.end),
            (utc(2026, 2, 23, 0, 0), utc(2026, 3, 2, 0, 0))
        );
    }

    #[test]
    fn month_end_anchors_clamp_without_drifting() {
        let s = schedule(
            utc(2026, 1, 31, 12, 0),
            chrono_tz::UTC,
            BudgetPeriod::Monthly,
        );
        let feb = s.window_at(utc(2026, 2, 28, 13, 0)).unwrap();
        assert_eq!(
            (feb.start, feb.end),
            (utc(2026, 2, 28, 12, 0), utc(2026, 3, 31, 12, 0))
        );
        let apr = s.window_at(utc(2026, 4, 30, 12, 0)).unwrap();
        assert_eq!(
            (apr.start, apr.end),
            (utc(2026, 4, 30, 12, 0), utc(2026, 5, 31, 12, 0))
        );
        // Leap year: 29 Feb.
        let s = schedule(
            utc(2028, 1, 31, 0, 0),
            chrono_tz::UTC,
            BudgetPeriod::Monthly,
        );
        assert_eq!(
            s.window_at(utc(2028, 3, 1, 0, 0)).unwrap().start,
            utc(2028, 2, 29, 0, 0)
        );
        assert!(is_month_end(NaiveDate::from_ymd_opt(2028, 2, 29).unwrap()));
    }

    #[test]
    fn quarterly_windows_are_three_calendar_months() {
        let s = schedule(
            utc(2026, 1, 15, 0, 0),
            chrono_tz::UTC,
            BudgetPeriod::Quarterly,
        );
        let w = s.window_at(utc(2026, 5, 1, 0, 0)).unwrap();
        assert_eq!(
            (w.index, w.start, w.end),
            (1, utc(2026, 4, 15, 0, 0), utc(2026, 7, 15, 0, 0))
        );
        let w = s.window_at(utc(2031, 11, 20, 0, 0)).unwrap();
        assert_eq!(w.start, utc(2031, 10, 15, 0, 0));
    }

    #[test]
    fn dst_shifts_follow_local_wall_time() {
        // Midnight in Paris: 23:00 UTC in winter, 22:00 UTC in summer (DST from 29 March 2026).
        let paris = chrono_tz::Europe::Paris;
        let s = schedule(utc(2026, 3, 27, 23, 0), paris, BudgetPeriod::Daily);
        let sunday = s.window_at(utc(2026, 3, 29, 12, 0)).unwrap();
        assert_eq!(
            (sunday.start, sunday.end),
            (utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 22, 0))
        );
        assert_eq!((sunday.end - sunday.start).num_hours(), 23);
        let oct = s.window_at(utc(2026, 10, 25, 12, 0)).unwrap();
        assert_eq!((oct.end - oct.start).num_hours(), 25);
        // An anchor inside the spring-forward gap (02:30 local) moves to 03:00 local that day.
        let s = schedule(utc(2026, 3, 28, 1, 30), paris, BudgetPeriod::Daily);
        let w = s.window_at(utc(2026, 3, 29, 6, 0)).unwrap();
        assert_eq!(w.start, utc(2026, 3, 29, 1, 0));
    }

    #[test]
    fn end_at_cuts_the_last_window_and_stops_the_schedule() {
        let mut s = schedule(utc(2026, 1, 1, 0, 0), chrono_tz::UTC, BudgetPeriod::Monthly);
        s.end_at = Some(utc(2026, 2, 10, 0, 0));
        let w = s.window_at(utc(2026, 2, 5, 0, 0)).unwrap();
        assert_eq!(w.end, utc(2026, 2, 10, 0, 0));
        assert_eq!(s.window_at(utc(2026, 2, 10, 0, 0)), None);
    }
}
