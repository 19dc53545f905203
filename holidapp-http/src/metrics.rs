//! [`Metrics`]: request and job counters, shown as Prometheus text by `GET /metrics`.
//!
//! Counting a request is two relaxed atomic increments found without a lock: the route table and
//! the kind table are built once, when the router is built, and only read afterwards. Job counts
//! by queue and status are not counted here at all: `GET /metrics` reads them from the store when
//! it is scraped, so they are right even with several API replicas and separate workers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::http::{Method, StatusCode};
use holidapp_core::{StatsSnapshot, WorkerStats};

/// The methods counted apart; any other is counted as `other`.
const METHODS: [&str; 4] = ["GET", "POST", "DELETE", "other"];

/// The statuses counted apart; any other is counted as `other`. These are all the statuses the
/// router answers with.
const STATUSES: [&str; 17] = [
    "200", "201", "202", "204", "400", "404", "405", "408", "409", "413", "415", "422", "500",
    "502", "503", "504", "other",
];

const SLOTS: usize = METHODS.len() * STATUSES.len();

/// The route label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Counters of one API process.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: OnceLock<RouteTable>,
    /// Jobs accepted by this process, per kind (the kinds registered when the router was built).
    submitted: OnceLock<HashMap<Box<str>, AtomicU64>>,
    /// The counters of the worker pool running in this process, when there is one.
    workers: Option<Arc<WorkerStats>>,
}

/// Request counters per route template, method and status.
#[derive(Debug)]
struct RouteTable {
    /// Route template -> row of `counters`. The last row counts unmatched requests.
    index: HashMap<Box<str>, usize>,
    names: Vec<Box<str>>,
    counters: Box<[[AtomicU64; SLOTS]]>,
}

impl RouteTable {
    fn new(templates: impl IntoIterator<Item = String>) -> Self {
        let mut names: Vec<Box<str>> = templates.into_iter().map(String::into_boxed_str).collect();
        names.sort();
        names.dedup();
        names.push(UNMATCHED.into());
        let index = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();
        let counters = names
            .iter()
            .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            .collect();
        RouteTable {
            index,
            names,
            counters,
        }
    }

    fn row(&self, route: Option<&str>) -> &[AtomicU64; SLOTS] {
        let unmatched = self.names.len() - 1;
        let i = route
            .and_then(|r| self.index.get(r).copied())
            .unwrap_or(unmatched);
        &self.counters[i]
    }
}

fn method_slot(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::DELETE => 2,
        _ => 3,
    }
}

fn status_slot(status: StatusCode) -> usize {
    match status.as_u16() {
        200 => 0,
        201 => 1,
        202 => 2,
        204 => 3,
        400 => 4,
        404 => 5,
        405 => 6,
        408 => 7,
        409 => 8,
        413 => 9,
        415 => 10,
        422 => 11,
        500 => 12,
        502 => 13,
        503 => 14,
        504 => 15,
        _ => 16,
    }
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same metrics, also showing the counters of a worker pool running in this process (the
    /// binary's embedded pool when no Redis is configured).
    pub fn with_workers(mut self, stats: Arc<WorkerStats>) -> Self {
        self.workers = Some(stats);
        self
    }

    /// Sets the route templates requests are counted by. The first call wins: routers built
    /// again over the same metrics (they serve the same routes) do not reset the counts.
    pub(crate) fn register_routes(&self, templates: impl IntoIterator<Item = String>) {
        self.routes.get_or_init(|| RouteTable::new(templates));
    }

    /// Counts one answered request. `route` is the matched route template (`/jobs/{id}`), or
    /// `None` when no route matched.
    pub fn record_request(&self, route: Option<&str>, method: &Method, status: StatusCode) {
        if let Some(table) = self.routes.get() {
            table.row(route)[method_slot(method) * STATUSES.len() + status_slot(status)]
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sets the kinds submitted jobs are counted by. The first call wins, as for the routes.
    pub(crate) fn register_kinds(&self, kinds: impl IntoIterator<Item = String>) {
        self.submitted.get_or_init(|| {
            kinds
                .into_iter()
                .map(|k| (k.into_boxed_str(), AtomicU64::new(0)))
                .collect()
        });
    }

    /// Counts one job of `kind` accepted by `POST /jobs`.
    pub fn record_job_submitted(&self, kind: &str) {
        if let Some(counter) = self.submitted.get().and_then(|kinds| kinds.get(kind)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Jobs accepted by this process so far, of every kind.
    pub fn jobs_submitted(&self) -> u64 {
        self.submitted.get().map_or(0, |kinds| {
            kinds.values().map(|c| c.load(Ordering::Relaxed)).sum()
        })
    }

    /// Requests answered so far for `route` (a template, or `"unmatched"`), `method` and
    /// `status`.
    pub fn requests(&self, route: &str, method: &Method, status: StatusCode) -> u64 {
        self.routes.get().map_or(0, |table| {
            let row = if route == UNMATCHED {
                table.row(None)
            } else {
                match table.index.get(route) {
                    Some(&i) => &table.counters[i],
                    None => return 0,
                }
            };
            row[method_slot(method) * STATUSES.len() + status_slot(status)].load(Ordering::Relaxed)
        })
    }

    /// Writes the counters in the Prometheus text format.
    pub fn write_prometheus(&self, out: &mut String) {
        out.push_str(
            "# HELP holidapp_http_requests_total Requests answered, by route template, method \
             and status.\n# TYPE holidapp_http_requests_total counter\n",
        );
        if let Some(table) = self.routes.get() {
            for (name, row) in table.names.iter().zip(table.counters.iter()) {
                for (slot, counter) in row.iter().enumerate() {
                    let count = counter.load(Ordering::Relaxed);
                    if count == 0 {
                        continue;
                    }
                    let method = METHODS[slot / STATUSES.len()];
                    let status = STATUSES[slot % STATUSES.len()];
                    let _ = writeln!(
                        out,
                        "holidapp_http_requests_total{{route=\"{name}\",method=\"{method}\",\
                         status=\"{status}\"}} {count}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP holidapp_jobs_submitted_total Jobs accepted by this API process, by kind.\n\
             # TYPE holidapp_jobs_submitted_total counter\n",
        );
        if let Some(kinds) = self.submitted.get() {
            let mut kinds: Vec<(&str, u64)> = kinds
                .iter()
                .map(|(kind, count)| (&**kind, count.load(Ordering::Relaxed)))
                .collect();
            kinds.sort_unstable();
            for (kind, count) in kinds {
                let _ = writeln!(
                    out,
                    "holidapp_jobs_submitted_total{{kind=\"{kind}\"}} {count}"
                );
            }
        }
        if let Some(workers) = &self.workers {
            write_workers(out, &workers.snapshot());
        }
    }
}

/// The embedded worker pool's counters.
fn write_workers(out: &mut String, s: &StatsSnapshot) {
    out.push_str(
        "# HELP holidapp_embedded_worker_jobs_total Jobs the embedded workers handled, by how \
         the attempt ended.\n# TYPE holidapp_embedded_worker_jobs_total counter\n",
    );
    let outcomes = [
        ("completed", s.completed),
        ("retried", s.retried),
        ("failed", s.failed),
        ("lease_lost", s.lease_lost),
        ("cancelled", s.cancelled),
        ("released", s.released),
        ("crashed", s.crashed),
        ("unrecorded", s.unrecorded),
    ];
    for (outcome, count) in outcomes {
        let _ = writeln!(
            out,
            "holidapp_embedded_worker_jobs_total{{outcome=\"{outcome}\"}} {count}"
        );
    }
    let _ = write!(
        out,
        "# HELP holidapp_embedded_worker_leased_total Jobs the embedded workers leased.\n\
         # TYPE holidapp_embedded_worker_leased_total counter\n\
         holidapp_embedded_worker_leased_total {}\n\
         # HELP holidapp_embedded_worker_backend_errors_total Backend calls of the embedded \
         workers that failed and were retried.\n\
         # TYPE holidapp_embedded_worker_backend_errors_total counter\n\
         holidapp_embedded_worker_backend_errors_total {}\n\
         # HELP holidapp_embedded_worker_busy Jobs the embedded workers are running now.\n\
         # TYPE holidapp_embedded_worker_busy gauge\n\
         holidapp_embedded_worker_busy {}\n",
        s.leased, s.backend_errors, s.busy
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_method_and_status() {
        let metrics = Metrics::new();
        metrics.register_routes(["/jobs".to_owned(), "/jobs/{id}".to_owned()]);
        metrics.record_request(Some("/jobs"), &Method::POST, StatusCode::CREATED);
        metrics.record_request(Some("/jobs"), &Method::POST, StatusCode::CREATED);
        metrics.record_request(Some("/jobs/{id}"), &Method::GET, StatusCode::NOT_FOUND);
        metrics.record_request(None, &Method::PUT, StatusCode::IM_A_TEAPOT);
        assert_eq!(
            metrics.requests("/jobs", &Method::POST, StatusCode::CREATED),
            2
        );
        assert_eq!(
            metrics.requests("/jobs", &Method::GET, StatusCode::CREATED),
            0
        );
        let mut text = String::new();
        metrics.write_prometheus(&mut text);
        assert!(text.contains(
            "holidapp_http_requests_total{route=\"/jobs\",method=\"POST\",status=\"201\"} 2\n"
        ));
        assert!(text.contains(
            "holidapp_http_requests_total{route=\"/jobs/{id}\",method=\"GET\",status=\"404\"} 1\n"
        ));
        assert!(text.contains(
            "holidapp_http_requests_total{route=\"unmatched\",method=\"other\",status=\"other\"} 1\n"
        ));
        assert!(!text.contains("embedded_worker"));
    }

    #[test]
    fn shows_the_embedded_workers_when_there_are_some() {
        let metrics = Metrics::new().with_workers(Arc::new(WorkerStats::new()));
        let mut text = String::new();
        metrics.write_prometheus(&mut text);
        for line in [
            "holidapp_embedded_worker_jobs_total{outcome=\"completed\"} 0",
            "holidapp_embedded_worker_leased_total 0",
            "holidapp_embedded_worker_busy 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
