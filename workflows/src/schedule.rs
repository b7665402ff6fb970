//! When to ask the provider for a task's status: pure functions of the provider's published
//! generation times, so the poll plan can be tested without a server and replays exactly.

use std::time::Duration;

/// The provider's guidance: poll every 30-60 s; more often risks rate limiting.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest interval a request may ask for (tests and compressed simulator clocks).
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest default deadline, whatever the model's estimate.
pub const MIN_DEFAULT_DEADLINE: Duration = Duration::from_secs(20 * 60);
/// Status answers of `completed` without a usable `video_url` tolerated before failing.
pub const MAX_COMPLETED_WITHOUT_URL: u32 = 3;

/// What a task is expected to be: the inputs of the provider's timing table.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskShape {
    /// Model name, e.g. `grok_video3`.
    pub model: String,
    /// Requested seconds of video.
    pub duration_seconds: u32,
    /// `480p` or `720p`.
    pub resolution: String,
    /// Number of reference images.
    pub image_count: u32,
}

impl TaskShape {
    /// The provider's defaults: a 10 s 720p clip without images.
    pub fn default_for(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            duration_seconds: 10,
            resolution: "720p".to_owned(),
            image_count: 0,
        }
    }
}

/// Expected generation time, from the provider's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Earliest typical completion: polling before this wastes calls.
    pub min: Duration,
    /// Latest typical completion, off-peak.
    pub max: Duration,
}

/// The provider's table: grok_video3 6-10 s clips 2-4 min, 20-30 s clips 4-8 min; pro 3-6 min;
/// max longer with long durations or many images; 480p faster than 720p. Minimums stay
/// conservative (480p shortens them a little), extras only lengthen the maximum.
pub fn estimate(shape: &TaskShape) -> Estimate {
    let minutes = |m: f64| Duration::from_secs_f64(m * 60.0);
    let by_duration = |d: u32| -> (f64, f64) {
        match d {
            0..=10 => (2.0, 4.0),
            11..=19 => (3.0, 6.0),
            _ => (4.0, 8.0),
        }
    };
    let (mut min, mut max) = match shape.model.as_str() {
        "grok_video3_pro" => (3.0, 6.0),
        "grok_video3_max" => {
            let (lo, hi) = by_duration(shape.duration_seconds);
            (lo, hi * 1.5)
        }
        _ => by_duration(shape.duration_seconds),
    };
    if shape.resolution == "480p" {
        min *= 0.8;
    }
    max += 0.5 * f64::from(shape.image_count);
    Estimate {
        min: minutes(min),
        max: minutes(max),
    }
}

/// The deadline when a request sets none: three times the upper estimate (peak hours are
/// slower), never below [`MIN_DEFAULT_DEADLINE`].
pub fn default_deadline(estimate: Estimate) -> Duration {
    (estimate.max * 3).max(MIN_DEFAULT_DEADLINE)
}

/// The interval a request asked for, or the default, never below [`MIN_POLL_INTERVAL`].
pub fn interval(requested_seconds: Option<u32>) -> Duration {
    requested_seconds
        .map(|s| Duration::from_secs(u64::from(s)))
        .unwrap_or(DEFAULT_POLL_INTERVAL)
        .max(MIN_POLL_INTERVAL)
}

/// The wait before the next status query of an unfinished task: at least one interval, and
/// not before the task's expected earliest completion (counted from its creation).
/// `since_created` is `None` when the creation time is unknown.
pub fn next_delay(
    interval: Duration,
    since_created: Option<Duration>,
    estimate: Estimate,
) -> Duration {
    match since_created {
        Some(elapsed) => interval.max(estimate.min.saturating_sub(elapsed)),
        None => interval,
    }
}

/// Spreads polls of many workflows apart: `delay` scaled by a factor in [1.0, 1.1) drawn from
/// `unit` (a deterministic workflow random number in [0, 1)). Only ever later, never earlier,
/// so jitter cannot add a status query.
pub fn jitter(delay: Duration, unit: f64) -> Duration {
    let unit = unit.clamp(0.0, 1.0);
    delay.mul_f64(1.0 + 0.1 * unit)
}

/// The wait before the next query, cut so that the last query lands at the deadline.
/// `None` when the deadline has passed.
pub fn bounded(delay: Duration, until_deadline: Duration) -> Option<Duration> {
    if until_deadline.is_zero() {
        None
    } else {
        Some(delay.min(until_deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_follow_the_provider_table() {
        let e = estimate(&TaskShape::default_for("grok_video3"));
        assert_eq!(e.min, Duration::from_secs(120));
        assert_eq!(e.max, Duration::from_secs(240));
        let long = TaskShape {
            duration_seconds: 30,
            ..TaskShape::default_for("grok_video3")
        };
        assert_eq!(estimate(&long).min, Duration::from_secs(240));
        assert_eq!(
            estimate(&TaskShape::default_for("grok_video3_pro")).min,
            Duration::from_secs(180)
        );
        let small = TaskShape {
            resolution: "480p".into(),
            ..TaskShape::default_for("grok_video3")
        };
        assert_eq!(estimate(&small).min, Duration::from_secs(96));
    }

    #[test]
    fn a_ten_second_clip_done_after_three_minutes_costs_at_most_four_queries() {
        // Query at once (t=0), then wait for the expected minimum, then every interval.
        let e = estimate(&TaskShape::default_for("grok_video3"));
        let done_at = Duration::from_secs(180);
        for unit in [0.0, 0.5, 0.999] {
            // ArchiveVideo: query at once, then wait for the expected minimum, then every interval.
            let mut t = Duration::ZERO;
            let mut queries = 0;
            loop {
                queries += 1;
                if t >= done_at {
                    break;
                }
                t += jitter(next_delay(DEFAULT_POLL_INTERVAL, Some(t), e), unit);
            }
            assert!(
                queries <= 4,
                "archive: {queries} queries with jitter {unit}"
            );
            // GenerateVideo: the first query waits for the expected minimum.
            let mut t = jitter(e.min, unit);
            let mut queries = 0;
            loop {
                queries += 1;
                if t >= done_at {
                    break;
                }
                t += jitter(DEFAULT_POLL_INTERVAL, unit);
            }
            assert!(
                queries <= 3,
                "generate: {queries} queries with jitter {unit}"
            );
        }
    }

    #[test]
    fn delays_respect_interval_floor_and_deadline() {
        let e = estimate(&TaskShape::default_for("grok_video3"));
        assert_eq!(
            next_delay(Duration::from_secs(30), Some(Duration::from_secs(300)), e),
            Duration::from_secs(30)
        );
        assert_eq!(
            next_delay(Duration::from_secs(30), None, e),
            Duration::from_secs(30)
        );
        assert_eq!(interval(Some(0)), MIN_POLL_INTERVAL);
        assert_eq!(interval(None), DEFAULT_POLL_INTERVAL);
        assert_eq!(
            bounded(Duration::from_secs(30), Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(bounded(Duration::from_secs(30), Duration::ZERO), None);
        assert_eq!(default_deadline(e), MIN_DEFAULT_DEADLINE);
        assert_eq!(
            jitter(Duration::from_secs(30), 0.0),
            Duration::from_secs(30)
        );
        assert!(jitter(Duration::from_secs(30), 0.999) < Duration::from_secs(33));
    }
}
