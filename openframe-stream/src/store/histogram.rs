//! Histogram parameters ([`BucketWidth`], [`EventGroup`]) and rows ([`HistogramBucket`]).

use chrono::DateTime;
use openframe_core::{Error, Result, Timestamp};
use serde::{Deserialize, Serialize};

use super::{EventFacet, EventFilter};

/// Most buckets one histogram may span.
pub const MAX_HISTOGRAM_BUCKETS: i64 = 1000;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// The width of one histogram bucket; buckets are aligned to the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BucketWidth {
    /// 60 seconds.
    Minute,
    /// 3600 seconds.
    Hour,
    /// 86 400 seconds (UTC days).
    Day,
    /// Any number of seconds, at least 1 and at most 366 days.
    Seconds(u32),
}

impl BucketWidth {
    /// The width in seconds.
    pub fn seconds(self) -> u32 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3600,
            Self::Day => 86_400,
            Self::Seconds(n) => n,
        }
    }

    /// The validated width in microseconds.
    pub(crate) fn micros(self) -> Result<i64> {
        let s = self.seconds();
        if s == 0 || s > 366 * 86_400 {
            return Err(Error::invalid(
                "bucket",
                "must be between 1 second and 366 days",
            ));
        }
        Ok(i64::from(s) * MICROS_PER_SECOND)
    }
}

/// What a histogram counts per bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventGroup {
    /// Per unified event type.
    EventType,
    /// Per severity.
    Severity,
}

impl EventGroup {
    /// The facet with the same values.
    pub(crate) fn facet(self) -> EventFacet {
        match self {
            Self::EventType => EventFacet::EventType,
            Self::Severity => EventFacet::Severity,
        }
    }
}

/// The count of one group value in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistogramBucket {
    /// The bucket's first instant.
    pub start: Timestamp,
    /// The group value (an event type or a severity name).
    pub group: String,
    /// How many events.
    pub count: u64,
}

/// A validated histogram request: the bucket width in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buckets {
    /// Bucket width, microseconds.
    pub(crate) width: i64,
}

impl Buckets {
    /// Validates the width and that `filter` spans at most [`MAX_HISTOGRAM_BUCKETS`] buckets.
    pub(crate) fn plan(filter: &EventFilter, bucket: BucketWidth) -> Result<Self> {
        filter.validate()?;
        let width = bucket.micros()?;
        let (Some(from), Some(to)) = (filter.start_micros(), filter.end_micros()) else {
            return Err(Error::invalid("from", "a histogram needs both from and to"));
        };
        let plan = Self { width };
        let spanned = (i128::from(plan.start_of(to - 1)) - i128::from(plan.start_of(from)))
            / i128::from(width)
            + 1;
        if spanned > i128::from(MAX_HISTOGRAM_BUCKETS) {
            return Err(Error::invalid(
                "bucket",
                "the time range spans more than 1000 buckets",
            ));
        }
        Ok(plan)
    }

    /// The start (microseconds) of the bucket holding `micros`.
    pub(crate) fn start_of(self, micros: i64) -> i64 {
        micros - micros.rem_euclid(self.width)
    }

    /// Turns a bucket start back into a timestamp.
    pub(crate) fn timestamp(micros: i64) -> Result<Timestamp> {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| Error::Internal("histogram bucket out of range".into()))
    }
}

/// Turns `(bucket start µs, group value, count)` triples into rows sorted by bucket start, then
/// group value.
pub(crate) fn histogram_rows(
    counts: impl IntoIterator<Item = (i64, String, u64)>,
) -> Result<Vec<HistogramBucket>> {
    let mut rows = counts
        .into_iter()
        .map(|(start, group, count)| {
            Ok(HistogramBucket {
                start: Buckets::timestamp(start)?,
                group,
                count,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    rows.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.group.cmp(&b.group)));
    Ok(rows)
}
