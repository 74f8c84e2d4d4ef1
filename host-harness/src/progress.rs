//! What `dynamics` shows while long work runs (a module of the CLI, not of the library).
//!
//! On a terminal (stderr is a TTY and `TERM` is not `dumb`) indicatif draws a bar per extracted
//! table and a spinner for a long call; anywhere else the output is plain lines, stable for
//! scripts. Nothing here guesses a total: the extraction's action reports no row count (and
//! Dataverse's `$count` stops at 5000), and a single call reports nothing until it ends, so the
//! bars show what is known (rows, pages, requests, rates, elapsed time) and no percentage or ETA.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dynamics_host::{Level, LogLine, LogSink};
use host_harness::extract::{PageReport, Progress};
use indicatif::{HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often the spinner and the elapsed time are redrawn.
const TICK: Duration = Duration::from_millis(120);

/// How often a long call says it is still running when there is no terminal.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// Bars on a terminal, plain lines elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Lines,
}

impl Mode {
    pub fn detect() -> Mode {
        let dumb = std::env::var_os("TERM").is_some_and(|term| term == "dumb");
        if std::io::stderr().is_terminal() && !dumb {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// The host's log as the CLI writes it, with an eye on the requests. The host logs every request
/// it sends as one `host` line at debug level (`METHOD url -> status (ms, bytes)`, redacted and
/// without the query string; see `http_import::Host::send` in host.rs), so counting those lines
/// counts the requests without the component's help. Lines at or above `min_level` go to stderr
/// as `StderrLog` writes them, above the bar when one is drawn.
pub struct Activity {
    min_level: Level,
    requests: AtomicU64,
    bar: Mutex<Option<ProgressBar>>,
}

impl Activity {
    pub fn new(min_level: Level) -> Arc<Activity> {
        Arc::new(Activity {
            min_level,
            requests: AtomicU64::new(0),
            bar: Mutex::new(None),
        })
    }

    /// Requests the host has sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn attach(&self, bar: &ProgressBar) {
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar.clone());
        }
    }

    fn detach(&self) {
        if let Ok(mut slot) = self.bar.lock() {
            *slot = None;
        }
    }
}

impl LogSink for Activity {
    fn write(&self, line: LogLine) {
        if line.source == "host" && line.level == Level::Debug {
            self.requests.fetch_add(1, Ordering::Relaxed);
        }
        if line.level >= self.min_level {
            let text = format!("[{} {}] {}", line.level.name(), line.source, line.message);
            // The bar is cloned out of the lock: the draw thread never waits on it.
            let bar = self.bar.lock().ok().and_then(|slot| slot.clone());
            match bar {
                Some(bar) => bar.suspend(|| eprintln!("{text}")),
                None => eprintln!("{text}"),
            }
        }
    }
}

/// `12 requests, 3.4/s`, counted from the host's log since `since` requests.
fn requests_text(activity: &Activity, since: u64, elapsed: Duration) -> String {
    let count = activity.requests().saturating_sub(since);
    let rate = count as f64 / elapsed.as_secs_f64().max(0.001);
    let noun = if count == 1 { "request" } else { "requests" };
    format!("{} {noun}, {rate:.1}/s", HumanCount(count))
}

/// The `{requests}` key of a template: the requests since the bar started, and their rate.
fn with_requests(style: ProgressStyle, activity: &Arc<Activity>, since: u64) -> ProgressStyle {
    let activity = activity.clone();
    style.with_key(
        "requests",
        move |state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write| {
            let _ = out.write_str(&requests_text(&activity, since, state.elapsed()));
        },
    )
}

/// The `{rate}` key: rows per second since the bar started, as an average (not smoothed).
fn rows_rate(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let rate = state.pos() as f64 / state.elapsed().as_secs_f64().max(0.001);
    let _ = write!(out, "{} rows/s", HumanCount(rate.round() as u64));
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates are fixed and valid")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓")
}

/// Extraction progress drawn as one bar per table: rows written this run, their rate, pages,
/// requests and elapsed time; a finished table keeps its line.
pub struct ExtractBars {
    activity: Arc<Activity>,
    bar: Option<ProgressBar>,
}

impl ExtractBars {
    pub fn new(activity: Arc<Activity>) -> ExtractBars {
        ExtractBars {
            activity,
            bar: None,
        }
    }
}

impl Progress for ExtractBars {
    fn table_started(&mut self, table: &str, table_number: usize, tables: usize, rows_in_all: u64) {
        if let Some(previous) = self.bar.take() {
            previous.abandon();
        }
        // Drawn once set up, not half-way.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(with_requests(
            style(
                "{spinner:.cyan} {prefix:.bold} {human_pos} rows, {rate} · {elapsed} · {requests} · {wide_msg}",
            )
            .with_key("rate", rows_rate),
            &self.activity,
            self.activity.requests(),
        ));
        bar.set_prefix(if tables > 1 {
            format!("[{table_number}/{tables}] {table}")
        } else {
            table.to_string()
        });
        bar.set_message(format!(
            "0 pages, {} rows in the file",
            HumanCount(rows_in_all)
        ));
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(TICK);
        self.activity.attach(&bar);
        self.bar = Some(bar);
    }

    fn page(&mut self, report: &PageReport) -> anyhow::Result<()> {
        let Some(bar) = &self.bar else {
            return Ok(());
        };
        bar.set_position(report.rows_this_run);
        let pages = if report.pages_this_run == 1 {
            "page"
        } else {
            "pages"
        };
        bar.set_message(format!(
            "{} {pages}, {} rows in the file{}",
            report.pages_this_run,
            HumanCount(report.rows_in_all),
            if report.complete { ", complete" } else { "" }
        ));
        if report.complete {
            // A finished bar shows the last tick character, the check mark, and stays.
            bar.disable_steady_tick();
            bar.finish();
            self.activity.detach();
            self.bar = None;
        }
        Ok(())
    }
}

impl Drop for ExtractBars {
    /// A failed run leaves the table's line as it was, and stops redrawing it before the error
    /// is printed.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
        self.activity.detach();
    }
}

/// The actions whose single call can run long: a batch, a sync, a query that follows every page.
pub fn is_long_call(action: &str, input: &str) -> bool {
    match action {
        "batch-entity-actions" | "sync-records" => true,
        "query-entities" | "run-fetch-xml-query" => {
            let fetch_all = serde_json::from_str::<serde_json::Value>(input)
                .ok()
                .and_then(|value| value.get("fetchAll").cloned());
            match fetch_all {
                Some(serde_json::Value::Bool(flag)) => flag,
                Some(serde_json::Value::String(text)) => text.eq_ignore_ascii_case("true"),
                _ => false,
            }
        }
        _ => false,
    }
}

/// What is shown while one call runs. The component reports nothing until the call ends, so a
/// spinner shows the elapsed time and the requests the host has sent, with their rate; without
/// a terminal a line every 30 s says the call is still running (a short call prints nothing).
pub struct CallProgress {
    activity: Arc<Activity>,
    action: String,
    started: Instant,
    since: u64,
    shown: Shown,
}

enum Shown {
    Spinner(ProgressBar),
    Heartbeat {
        stop: mpsc::Sender<()>,
        thread: JoinHandle<bool>,
    },
    Nothing,
}

impl CallProgress {
    pub fn start(activity: &Arc<Activity>, mode: Mode, action: &str) -> CallProgress {
        let since = activity.requests();
        let started = Instant::now();
        let shown = match mode {
            Mode::Bars => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
                bar.set_style(with_requests(
                    style("{spinner:.cyan} {prefix:.bold} {elapsed_precise} · {requests}"),
                    activity,
                    since,
                ));
                bar.set_prefix(action.to_string());
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(TICK);
                activity.attach(&bar);
                Shown::Spinner(bar)
            }
            Mode::Lines => {
                let (stop, stopped) = mpsc::channel::<()>();
                let watched = activity.clone();
                let name = action.to_string();
                let thread = std::thread::spawn(move || {
                    let mut said = false;
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(HEARTBEAT) {
                        eprintln!(
                            "{name}: running for {}, {}",
                            HumanDuration(started.elapsed()),
                            requests_text(&watched, since, started.elapsed())
                        );
                        said = true;
                    }
                    said
                });
                Shown::Heartbeat { stop, thread }
            }
        };
        CallProgress {
            activity: activity.clone(),
            action: action.to_string(),
            started,
            since,
            shown,
        }
    }

    /// Ends the display: the spinner becomes a summary line; plain output gets one only when
    /// it said the call was running.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        match std::mem::replace(&mut self.shown, Shown::Nothing) {
            Shown::Spinner(bar) => {
                bar.disable_steady_tick();
                bar.finish();
                self.activity.detach();
            }
            Shown::Heartbeat { stop, thread } => {
                let _ = stop.send(());
                if thread.join().unwrap_or(false) {
                    eprintln!(
                        "{}: ended after {}, {}",
                        self.action,
                        HumanDuration(self.started.elapsed()),
                        requests_text(&self.activity, self.since, self.started.elapsed())
                    );
                }
            }
            Shown::Nothing => {}
        }
    }
}

impl Drop for CallProgress {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_calls_are_batches_syncs_and_queries_that_fetch_every_page() {
        assert!(is_long_call("batch-entity-actions", "{}"));
        assert!(is_long_call("sync-records", "{}"));
        assert!(is_long_call(
            "query-entities",
            r#"{"entityType":"accounts","fetchAll":true}"#
        ));
        assert!(is_long_call(
            "run-fetch-xml-query",
            r#"{"fetchAll":"TRUE"}"#
        ));
        assert!(!is_long_call(
            "query-entities",
            r#"{"entityType":"accounts"}"#
        ));
        assert!(!is_long_call("query-entities", r#"{"fetchAll":false}"#));
        assert!(!is_long_call("query-entities", "not json"));
        assert!(!is_long_call("get-current-user", r#"{"fetchAll":true}"#));
    }

    #[test]
    fn requests_are_counted_from_the_hosts_request_lines_only() {
        let activity = Activity::new(Level::Error);
        let line = |level, source: &'static str| {
            LogLine {
            level,
            source,
            message: "GET https://contoso.crm.dynamics.com/api/data/v9.2/accounts -> 200 (5 ms, 10 bytes)"
                .to_string(),
        }
        };
        activity.write(line(Level::Debug, "host"));
        activity.write(line(Level::Debug, "host"));
        activity.write(line(Level::Debug, "component"));
        activity.write(line(Level::Info, "component"));
        assert_eq!(activity.requests(), 2);
        assert_eq!(
            requests_text(&activity, 0, Duration::from_secs(4)),
            "2 requests, 0.5/s"
        );
        assert_eq!(
            requests_text(&activity, 1, Duration::from_secs(2)),
            "1 request, 0.5/s"
        );
    }
}
