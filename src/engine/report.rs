//! What people and scripts see: progress bars on a terminal, timestamped log lines
//! elsewhere (with a progress line at a steady interval, for CI logs and journald),
//! and the closing summary.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle, WeakProgressBar};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `--log-format json`: for the whole process, every log line is one JSON object
/// (`{"time","level","message"}`) and no progress bar is drawn.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Switches the process to JSON log lines (`--log-format json`); call before the
/// first [`Reporter`] is made.
pub fn set_json_logs(on: bool) {
    JSON_LOGS.store(on, Ordering::Relaxed);
}

pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// One log line as `--log-format json` prints it.
pub fn json_line(level: &str, message: &str) -> String {
    serde_json::json!({
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "level": level,
        "message": message,
    })
    .to_string()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// A watcher of a run besides the terminal (`ferry ui` streams it to the page): it
/// is handed every bar as it is made (bars are shared handles; it reads their
/// position when it likes), every line shown, and the closing summary.
pub trait Sink: Send + Sync {
    fn bar(&self, counts_bytes: bool, label: &str, bar: &ProgressBar);
    fn line(&self, warning: bool, msg: &str);
    fn summary(&self, summary: &Summary);
    /// Every blob of this image (by its reference as given) is stored.
    fn image_saved(&self, _reference: &str) {}
}

#[derive(Clone)]
pub struct Reporter {
    multi: MultiProgress,
    bars: bool,
    verbosity: Verbosity,
    sink: Option<Arc<dyn Sink>>,
    /// Without a terminal: the bars whose progress is logged every so often.
    ticker: Option<Arc<Ticker>>,
}

/// How often a progress line is logged when stderr is not a terminal.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The bars being followed in log mode, and the thread that logs them.
struct Ticker {
    every: Duration,
    tracked: Mutex<Vec<Tracked>>,
    started: std::sync::Once,
}

/// A bar followed by the ticker: its label and the position it had at the last line.
struct Tracked {
    bar: WeakProgressBar,
    label: String,
    bytes: bool,
    since: Instant,
    last: (u64, Instant),
}

impl Ticker {
    fn follow(
        self: &Arc<Ticker>,
        bar: &ProgressBar,
        label: &str,
        bytes: bool,
        reporter: &Reporter,
    ) {
        let now = Instant::now();
        self.tracked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Tracked {
                bar: bar.downgrade(),
                label: label.to_string(),
                bytes,
                since: now,
                last: (0, now),
            });
        // One thread per run, started with the first bar; it holds only weak
        // references, so finished and dropped bars fall out of its lines.
        self.started.call_once(|| {
            let ticker = Arc::downgrade(self);
            let reporter = Reporter {
                ticker: None,
                ..reporter.clone()
            };
            let every = self.every;
            let _ = std::thread::Builder::new()
                .name("progress".into())
                .spawn(move || loop {
                    std::thread::sleep(every);
                    let Some(ticker) = ticker.upgrade() else {
                        return;
                    };
                    if let Some(line) = ticker.line() {
                        reporter.line("info", &line);
                    }
                });
        });
    }

    /// The progress of every live bar, bytes first, then counts; none when no bar
    /// is running.
    fn line(&self) -> Option<String> {
        let mut tracked = self.tracked.lock().unwrap_or_else(|p| p.into_inner());
        tracked.retain(|t| t.bar.upgrade().is_some_and(|b| !b.is_finished()));
        let now = Instant::now();
        let mut parts: Vec<(bool, String)> = Vec::new();
        for t in tracked.iter_mut() {
            let Some(bar) = t.bar.upgrade() else {
                continue;
            };
            let (pos, total) = (bar.position(), bar.length().unwrap_or(0));
            if total == 0 {
                continue;
            }
            if t.bytes {
                let recent = now.duration_since(t.last.1).as_secs_f64();
                let rate = if recent > 0.0 {
                    pos.saturating_sub(t.last.0) as f64 / recent
                } else {
                    0.0
                };
                let overall = now.duration_since(t.since).as_secs_f64();
                parts.push((true, bytes_progress(&t.label, pos, total, rate, overall)));
            } else {
                parts.push((false, format!("{} {pos}/{total}", t.label)));
            }
            t.last = (pos, now);
        }
        parts.sort_by_key(|(bytes, _)| !*bytes);
        let parts: Vec<String> = parts.into_iter().map(|(_, p)| p).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// `save: 120 MiB of 1.2 GiB (10%), 12 MiB/s, ETA 1m32s`: `rate` is the speed since
/// the last line; the ETA comes from the average since the start (`elapsed`
/// seconds), which a pause does not throw off.
pub fn bytes_progress(label: &str, pos: u64, total: u64, rate: f64, elapsed: f64) -> String {
    use indicatif::HumanBytes;
    let percent = if total > 0 {
        (pos.min(total) as f64 * 100.0 / total as f64) as u64
    } else {
        100
    };
    let average = if elapsed > 0.0 {
        pos as f64 / elapsed
    } else {
        0.0
    };
    let eta = if average > 0.0 {
        compact_duration(total.saturating_sub(pos) as f64 / average)
    } else {
        "?".to_string()
    };
    let (done, all, speed) = (HumanBytes(pos), HumanBytes(total), HumanBytes(rate as u64));
    crate::tr!(
        "{label}: {done} of {all} ({percent}%), {speed}/s, ETA {eta}",
        "{label}: {done} / {all} ({percent}%), {speed}/s, 剩余 {eta}"
    )
}

/// `42s`, `3m05s`, `2h10m`.
fn compact_duration(secs: f64) -> String {
    let s = if secs.is_finite() {
        secs.max(0.0).round() as u64
    } else {
        0
    };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Reporter {
    pub fn new(verbosity: Verbosity) -> Reporter {
        let bars = verbosity != Verbosity::Quiet && std::io::stderr().is_terminal() && !json_logs();
        let multi = MultiProgress::with_draw_target(if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Reporter {
            multi,
            bars,
            verbosity,
            ticker: None,
            sink: None,
        }
    }

    /// A reporter that draws no bars on the terminal and tells `sink` everything;
    /// lines still go to standard error, timestamped.
    pub fn with_sink(verbosity: Verbosity, sink: Arc<dyn Sink>) -> Reporter {
        Reporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            bars: false,
            verbosity,
            ticker: None,
            sink: Some(sink),
        }
    }

    /// Without a terminal, log the progress of the running bars every `every`
    /// (none: never); on a terminal the bars show it.
    pub fn with_progress_lines(mut self, every: Option<Duration>) -> Reporter {
        self.ticker = match every {
            Some(every) if !self.bars && self.verbosity != Verbosity::Quiet && !every.is_zero() => {
                Some(Arc::new(Ticker {
                    every,
                    tracked: Mutex::new(Vec::new()),
                    started: std::sync::Once::new(),
                }))
            }
            _ => None,
        };
        self
    }

    pub fn is_verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }

    /// A bar whose total and progress are followed without a terminal too.
    /// A bar nobody draws or logs but whose position a sink can read.
    fn watched_bar(&self, total: u64, counts_bytes: bool, label: &str) -> ProgressBar {
        let Some(sink) = &self.sink else {
            return ProgressBar::hidden();
        };
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        sink.bar(counts_bytes, label, &bar);
        bar
    }

    /// A sink (`ferry ui`) is handed the bar too.
    fn followed(&self, total: u64, label: &str, bytes: bool) -> ProgressBar {
        if self.ticker.is_none() && self.sink.is_none() {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Some(ticker) = &self.ticker {
            ticker.follow(&bar, label, bytes, self);
        }
        if let Some(sink) = &self.sink {
            sink.bar(bytes, label, &bar);
        }
        bar
    }

    /// A bar counting bytes; without a terminal, its progress is logged now and then.
    pub fn bytes_bar(&self, total: u64, label: &str) -> ProgressBar {
        if !self.bars {
            return self.followed(total, label, true);
        }
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template(crate::i18n::t(
                "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} 剩余 {eta} {msg}",
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A bar for a part of the work (one data file): drawn on a terminal, not
    /// logged (the whole is).
    pub fn part_bar(&self, total: u64, label: &str) -> ProgressBar {
        if !self.bars {
            return self.watched_bar(total, true, label);
        }
        self.bytes_bar(total, label)
    }

    /// A bar counting items (images); without a terminal, logged with the bytes.
    pub fn count_bar(&self, total: u64, label: &str) -> ProgressBar {
        if !self.bars {
            return self.followed(total, label, false);
        }
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    }

    pub fn info(&self, msg: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.line("info", msg);
        }
    }

    pub fn debug(&self, msg: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line("debug", msg);
        }
    }

    /// A result everyone sees, even with `--quiet` (a summary), logged as `info`.
    pub fn notice(&self, msg: &str) {
        self.line("info", msg);
    }

    /// Tells a watcher that an image of a save has all its blobs stored.
    pub fn image_saved(&self, reference: &str) {
        if let Some(sink) = &self.sink {
            sink.image_saved(reference);
        }
    }

    /// The note for a request about to be tried again.
    pub fn retrying(&self, e: &crate::registry::RegistryError, wait: Duration) {
        let secs = wait.as_secs_f64();
        self.warn(&crate::tr!(
            "retrying in {secs:.1}s: {e}",
            "{secs:.1} 秒后重试: {e}"
        ));
    }

    /// Warnings and errors are shown even with `--quiet`.
    pub fn warn(&self, msg: &str) {
        self.line("warn", msg);
    }

    fn line(&self, level: &str, msg: &str) {
        if let Some(sink) = &self.sink {
            sink.line(level == "warn", msg);
        }
        if json_logs() {
            eprintln!("{}", json_line(level, msg));
        } else if self.bars {
            let _ = self.multi.println(msg);
        } else {
            eprintln!("{} {msg}", chrono::Local::now().format("%Y-%m-%dT%H:%M:%S"));
        }
    }
}

/// The closing numbers of a save or upload.
#[derive(Debug, Default)]
pub struct Summary {
    pub action: &'static str,
    pub total: usize,
    pub succeeded: usize,
    /// References that could not be parsed.
    pub invalid: Vec<(String, String)>,
    /// Images that failed, with why.
    pub failed: Vec<(String, String)>,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Each image and what became of it (for `--json`); references that failed
    /// before anything was known of them are added by [`Summary::records`].
    pub images: Vec<ImageRecord>,
    /// What a `--dry-run` would do.
    pub plan: Option<Plan>,
}

impl Summary {
    pub fn is_success(&self) -> bool {
        self.invalid.is_empty() && self.failed.is_empty()
    }

    /// Every image's record: those the work made, then one for each failed or
    /// invalid reference that has none (it failed before it was resolved).
    pub fn records(&self) -> Vec<ImageRecord> {
        let mut out = self.images.clone();
        let known: std::collections::HashSet<(String, ImageState)> =
            out.iter().map(|r| (r.source.clone(), r.state)).collect();
        for (list, state) in [
            (&self.invalid, ImageState::Invalid),
            (&self.failed, ImageState::Failed),
        ] {
            for (r, why) in list {
                if !known.contains(&(r.clone(), state)) {
                    out.push(ImageRecord::problem(r, why, state));
                }
            }
        }
        out
    }

    /// The action (save, upload, sync) in the chosen language.
    pub fn action_name(&self) -> &'static str {
        match self.action {
            "save" => crate::i18n::t("save", "保存"),
            "upload" => crate::i18n::t("upload", "上传"),
            "sync" => crate::i18n::t("sync", "同步"),
            "copy" => crate::i18n::t("copy", "复制"),
            other => other,
        }
    }

    /// With `-v`: every reference written at `target` (a registry host), and those
    /// that were there already.
    pub fn print_written(&self, reporter: &Reporter, target: &str) {
        if !reporter.is_verbose() {
            return;
        }
        for r in &self.images {
            let Some(name) = &r.target else {
                continue;
            };
            let digest = r.digest.as_deref().unwrap_or_default();
            match r.state {
                ImageState::Copied => reporter.debug(&crate::tr!(
                    "  pushed {target}/{name} {digest}",
                    "  已推送 {target}/{name} {digest}"
                )),
                ImageState::Present => reporter.debug(&crate::tr!(
                    "  already at {target}/{name} {digest}",
                    "  已存在 {target}/{name} {digest}"
                )),
                _ => {}
            }
        }
    }

    pub fn print(&self, reporter: &Reporter) {
        if let Some(sink) = &reporter.sink {
            sink.summary(self);
        }
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            self.bytes as f64 / secs
        } else {
            0.0
        };
        let (bytes, rate) = (
            indicatif::HumanBytes(self.bytes),
            indicatif::HumanBytes(rate as u64),
        );
        let (total, ok, failed, invalid) = (
            self.total,
            self.succeeded,
            self.failed.len(),
            self.invalid.len(),
        );
        let action = self.action_name();
        let noun = if total == 1 { "image" } else { "images" };
        reporter.notice(&crate::tr!(
            "{action}: {total} {noun}, {ok} succeeded, {failed} failed, {invalid} invalid; {bytes} in {secs:.1}s ({rate}/s)",
            "{action}: 共 {total} 个镜像, 成功 {ok}, 失败 {failed}, 无效 {invalid}; {bytes}, 用时 {secs:.1} 秒 ({rate}/s)"
        ));
        for (r, why) in &self.invalid {
            reporter.warn(&format!(
                "  {}: {r}: {why}",
                crate::i18n::t("invalid", "无效")
            ));
        }
        for (r, why) in &self.failed {
            reporter.warn(&format!(
                "  {}: {r}: {why}",
                crate::i18n::t("failed", "失败")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_say_bytes_percent_speed_and_eta() {
        let line = bytes_progress("save", 50 << 20, 200 << 20, 5.0 * (1 << 20) as f64, 10.0);
        assert!(
            line.starts_with("save: 50.00 MiB of 200.00 MiB (25%)"),
            "{line}"
        );
        assert!(line.contains("5.00 MiB/s"), "{line}");
        // 150 MiB left at the average of 5 MiB/s.
        assert!(line.ends_with("ETA 30s"), "{line}");
        assert!(bytes_progress("x", 0, 10, 0.0, 0.0).ends_with("ETA ?"));
        assert_eq!(compact_duration(185.0), "3m05s");
        assert_eq!(compact_duration(7860.0), "2h11m");
        assert_eq!(compact_duration(f64::INFINITY), "0s");
    }

    #[test]
    fn the_ticker_follows_live_bars_only() {
        let ticker = Arc::new(Ticker {
            every: Duration::from_secs(3600),
            tracked: Mutex::new(Vec::new()),
            started: std::sync::Once::new(),
        });
        let reporter = Reporter::new(Verbosity::Quiet);
        let bytes = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::hidden());
        let images = ProgressBar::with_draw_target(Some(4), ProgressDrawTarget::hidden());
        ticker.follow(&images, "images", false, &reporter);
        ticker.follow(&bytes, "push", true, &reporter);
        bytes.inc(40);
        images.inc(1);
        let line = ticker.line().expect("a line");
        assert!(line.starts_with("push: 40 B of 100 B (40%)"), "{line}");
        assert!(line.ends_with("; images 1/4"), "{line}");
        bytes.finish_and_clear();
        drop(images);
        assert_eq!(
            ticker.line(),
            None,
            "finished and dropped bars are left out"
        );
    }
}

/// An error with its causes on one line, each cause said once: error types that
/// already include their cause in their own message are not repeated.
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => crate::i18n::io_error(io),
            None => cause.to_string(),
        };
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What became of one image, for `--json` and `--dry-run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    /// Written into a bundle.
    Saved,
    /// Written to the target.
    Copied,
    /// The target already had it (nothing sent).
    Present,
    /// `--dry-run`: would be copied or saved.
    Planned,
    Failed,
    /// The reference or list line could not be read.
    Invalid,
}

/// One image of a run, as `--json` reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageRecord {
    /// The reference (or list line) as given.
    pub source: String,
    /// Where it goes: `repository[:tag]` at the target, or its rename in a bundle.
    pub target: Option<String>,
    pub digest: Option<String>,
    /// Manifests, configs and layers it needs, in bytes.
    pub bytes: u64,
    pub state: ImageState,
    /// Why it failed or is invalid.
    pub reason: Option<String>,
}

impl ImageRecord {
    /// A reference that failed (or was invalid) before anything was known of it.
    pub fn problem(source: &str, why: &str, state: ImageState) -> ImageRecord {
        ImageRecord {
            source: source.to_string(),
            target: None,
            digest: None,
            bytes: 0,
            state,
            reason: Some(why.to_string()),
        }
    }
}

/// A number of blobs and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlobCount {
    pub blobs: usize,
    pub bytes: u64,
}

impl BlobCount {
    pub fn add(&mut self, bytes: u64) {
        self.blobs += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    fn merge(&mut self, other: &BlobCount) {
        self.blobs += other.blobs;
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// What a `--dry-run` would do, blob by blob (each blob counted once per
/// repository it goes to).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Plan {
    /// Read from the source (downloaded, or streamed to the target).
    pub fetch: BlobCount,
    /// Sent to the target.
    pub push: BlobCount,
    /// Already in the target's repository: skipped.
    pub present: BlobCount,
    /// Mounted from another repository of the target (nothing sent).
    pub mount: BlobCount,
    /// Left to base bundles (an increment): looked for, never sent.
    pub from_bases: BlobCount,
    /// Found in the local blob cache.
    pub cached: BlobCount,
    /// Manifests that would be written.
    pub manifests: usize,
    /// `save`: the sizes the data files would have.
    pub files: Vec<u64>,
}

impl Plan {
    /// Adds another plan's numbers (a second pass, e.g. the referrers).
    pub fn merge(&mut self, other: &Plan) {
        self.fetch.merge(&other.fetch);
        self.push.merge(&other.push);
        self.present.merge(&other.present);
        self.mount.merge(&other.mount);
        self.from_bases.merge(&other.from_bases);
        self.cached.merge(&other.cached);
        self.manifests += other.manifests;
        self.files.extend(&other.files);
    }
}
