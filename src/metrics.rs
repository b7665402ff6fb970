//! Prometheus metrics: the SDK's own (workflow and activity task latencies, slots, polls of
//! the task queue) and ours, on one endpoint (`GROK_METRICS_ADDRESS`, `/metrics`).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use temporalio_common::telemetry::{
    PrometheusExporterOptions,
    metrics::{
        CoreMeter, Counter, Gauge, HistogramDuration, MetricAttributes, MetricKeyValue,
        MetricParameters, NewAttributes,
    },
    start_prometheus_metric_exporter,
};

/// The worker's own instruments. Without an endpoint they record into nothing.
#[derive(Clone)]
pub struct Metrics {
    inner: Option<Arc<Instruments>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.inner.is_some())
            .finish()
    }
}

struct Instruments {
    meter: Arc<dyn CoreMeter>,
    provider_requests: Counter,
    polls: Counter,
    bytes_copied: Counter,
    copy_duration: HistogramDuration,
    failures: Counter,
    copies_started: Counter,
    copies_finished: Counter,
    workflows: Gauge,
}

impl Metrics {
    /// No endpoint: nothing is recorded.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Starts the Prometheus endpoint and returns the meter the SDK runtime should use too.
    pub fn serve(addr: SocketAddr) -> Result<(Self, Arc<dyn CoreMeter>, SocketAddr), String> {
        let options = PrometheusExporterOptions::builder()
            .socket_addr(addr)
            .counters_total_suffix(true)
            .use_seconds_for_durations(true)
            .build();
        let started = start_prometheus_metric_exporter(options)
            .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
        let meter: Arc<dyn CoreMeter> = started.meter;
        let param = |name: &'static str, description: &'static str| {
            MetricParameters::builder()
                .name(name)
                .description(description)
                .build()
        };
        let instruments = Instruments {
            provider_requests: meter.counter(param(
                "grok_provider_requests",
                "Provider API requests, by endpoint and outcome",
            )),
            polls: meter.counter(param(
                "grok_status_polls",
                "Status queries answered by the provider, by normalised status",
            )),
            bytes_copied: meter.counter(param("grok_bytes_copied", "Video bytes stored in S3")),
            copy_duration: meter
                .histogram_duration(param("grok_copy_duration", "Duration of successful copies, in seconds")),
            failures: meter.counter(param(
                "grok_activity_failures",
                "Activity failures, by failure type",
            )),
            copies_started: meter.counter(param(
                "grok_copies_started",
                "Copy attempts started (workflows in the copying phase: started minus finished)",
            )),
            copies_finished: meter.counter(param(
                "grok_copies_finished",
                "Copy attempts finished, by result",
            )),
            workflows: meter.gauge(param(
                "grok_workflows",
                "Running workflows of the task queue by phase (waiting, copying), from Temporal's visibility store",
            )),
            meter: meter.clone(),
        };
        Ok((
            Self {
                inner: Some(Arc::new(instruments)),
            },
            meter,
            started.bound_addr,
        ))
    }

    fn attrs(i: &Instruments, pairs: &[(&str, &str)]) -> MetricAttributes {
        i.meter.new_attributes(NewAttributes {
            attributes: pairs
                .iter()
                .map(|(k, v)| MetricKeyValue::new(*k, v.to_string()))
                .collect(),
        })
    }

    /// One provider request and how it ended (`ok` or a failure type).
    pub fn provider_request(&self, endpoint: &str, outcome: &str) {
        if let Some(i) = &self.inner {
            i.provider_requests.add(
                1,
                &Self::attrs(i, &[("endpoint", endpoint), ("outcome", outcome)]),
            );
        }
    }

    /// One answered status query.
    pub fn poll(&self, status: &str) {
        if let Some(i) = &self.inner {
            i.polls.add(1, &Self::attrs(i, &[("status", status)]));
        }
    }

    /// An activity failure of this type.
    pub fn failure(&self, activity: &str, failure_type: &str) {
        if let Some(i) = &self.inner {
            i.failures.add(
                1,
                &Self::attrs(i, &[("activity", activity), ("type", failure_type)]),
            );
        }
    }

    /// Whether an endpoint serves what is recorded.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// How many running workflows are in `phase`.
    pub fn workflows_in_phase(&self, phase: &str, count: u64) {
        if let Some(i) = &self.inner {
            i.workflows
                .record(count, &Self::attrs(i, &[("phase", phase)]));
        }
    }

    /// A copy attempt begins.
    pub fn copy_started(&self) {
        if let Some(i) = &self.inner {
            i.copies_started.add(1, &Self::attrs(i, &[]));
        }
    }

    /// A copy attempt ended; on success with its size and duration.
    pub fn copy_finished(&self, result: &str, stored: Option<(u64, Duration)>) {
        if let Some(i) = &self.inner {
            i.copies_finished
                .add(1, &Self::attrs(i, &[("result", result)]));
            if let Some((bytes, took)) = stored {
                let none = Self::attrs(i, &[]);
                i.bytes_copied.add(bytes, &none);
                i.copy_duration.record(took, &none);
            }
        }
    }
}
