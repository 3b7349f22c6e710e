//! What commands print on standard output for scripts and for `--dry-run`: the one
//! JSON document of `--json` (schema in README, "JSON output") and the plan of a
//! dry run in words. Logs stay on standard error.

use crate::bundle::meta::{DataFile, Selection};
use crate::engine::report::{ImageRecord, ImageState, Plan, Summary};
use indicatif::HumanBytes;
use serde::Serialize;

/// The document `--json` prints: one per command (one a line per daemon round).
#[derive(Debug, Serialize)]
pub struct Document {
    /// `save`, `upload`, `sync`, `copy`, `verify`, `ls`, `tags`, `inspect`.
    pub command: &'static str,
    /// Whether everything succeeded (exit status 0).
    pub ok: bool,
    pub dry_run: bool,
    /// When the command started (RFC 3339, UTC) and how long it took.
    pub started: String,
    pub elapsed_seconds: f64,
    /// Where images came from and went (a registry, a bundle's meta, a folder).
    pub source: Option<String>,
    pub target: Option<String>,
    pub totals: Totals,
    pub images: Vec<ImageRecord>,
    /// Tag selectors and what they expanded to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub selections: Vec<Selection>,
    /// The bundle's data files (save, verify, ls).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<DataFile>,
    /// The bundle's meta file (save, upload, verify, ls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
    /// A dry run's plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Problems that are not one image's (verify: broken files).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// `tags`: the tags of the repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// `inspect`: the reference and the manifest's details (digest, media type,
    /// config and layers, or the platforms of an index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub images: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub invalid: usize,
    /// Bytes sent or written (0 for a dry run).
    pub bytes: u64,
}

impl Document {
    /// A document for `command` that started at `started` (`chrono::Utc::now()`
    /// taken at its start).
    pub fn new(command: &'static str, started: chrono::DateTime<chrono::Utc>) -> Document {
        Document {
            command,
            ok: true,
            dry_run: false,
            started: started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            elapsed_seconds: (chrono::Utc::now() - started)
                .to_std()
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            source: None,
            target: None,
            totals: Totals::default(),
            images: Vec::new(),
            selections: Vec::new(),
            files: Vec::new(),
            meta: None,
            plan: None,
            problems: Vec::new(),
            tags: None,
            reference: None,
            details: None,
        }
    }

    /// Takes the numbers of a work summary.
    pub fn with_summary(mut self, summary: &Summary) -> Document {
        self.ok = summary.is_success();
        self.elapsed_seconds = summary.elapsed.as_secs_f64();
        self.totals = Totals {
            images: summary.total,
            succeeded: summary.succeeded,
            failed: summary.failed.len(),
            invalid: summary.invalid.len(),
            bytes: summary.bytes,
        };
        self
    }

    /// Prints the document on standard output: pretty, or on one line (a daemon
    /// prints one a round).
    pub fn print(&self, one_line: bool) -> anyhow::Result<()> {
        let text = if one_line {
            serde_json::to_string(self)?
        } else {
            serde_json::to_string_pretty(self)?
        };
        println!("{text}");
        Ok(())
    }
}

/// What upload, sync and copy print on standard output: with `--json` the document
/// (on one line for a daemon round), for a dry run the plan in words; else nothing.
#[allow(clippy::too_many_arguments)]
pub fn work_output(
    command: &'static str,
    summary: &Summary,
    started: chrono::DateTime<chrono::Utc>,
    source: Option<String>,
    target: Option<String>,
    selections: &[Selection],
    json: bool,
    one_line: bool,
) -> anyhow::Result<()> {
    let images = summary.records();
    if json {
        let mut doc = Document::new(command, started).with_summary(summary);
        doc.dry_run = summary.plan.is_some();
        doc.source = source;
        doc.target = target;
        doc.images = images;
        doc.selections = selections.to_vec();
        doc.plan = summary.plan.clone();
        return doc.print(one_line);
    }
    if let Some(plan) = &summary.plan {
        print!("{}", plan_text(command, &images, selections, plan));
    }
    Ok(())
}

/// The plan of a `--dry-run`, in words, for standard output.
pub fn plan_text(
    command: &str,
    images: &[ImageRecord],
    selections: &[Selection],
    plan: &Plan,
) -> String {
    let mut out = crate::tr!(
        "{command} --dry-run: nothing was written\n",
        "{command} --dry-run: 没有写入任何内容\n"
    );
    if !selections.is_empty() {
        out.push_str(crate::i18n::t("selectors:\n", "选择器:\n"));
        for s in selections {
            let tags = if s.tags.is_empty() {
                crate::i18n::t("(no tag)", "(没有标签)").to_string()
            } else {
                s.tags.join(", ")
            };
            out.push_str(&format!("  {}  =>  {tags}\n", s.selector));
            if !s.excluded.is_empty() {
                out.push_str(&crate::tr!(
                    "    excluded: {}\n",
                    "    已排除: {}\n",
                    s.excluded.join(", ")
                ));
            }
        }
    }
    let count = |state: ImageState| images.iter().filter(|i| i.state == state).count();
    let verb = if command == "save" {
        crate::i18n::t("save", "保存")
    } else {
        crate::i18n::t("copy", "复制")
    };
    out.push_str(&crate::tr!(
        "images: {} to {verb}, {} already there, {} failed, {} invalid\n",
        "镜像: 待{verb} {}, 已存在 {}, 失败 {}, 无效 {}\n",
        count(ImageState::Planned),
        count(ImageState::Present),
        count(ImageState::Failed),
        count(ImageState::Invalid)
    ));
    for i in images {
        let state = match i.state {
            ImageState::Planned => verb,
            ImageState::Present => crate::i18n::t("present", "已存在"),
            ImageState::Failed => crate::i18n::t("failed", "失败"),
            ImageState::Invalid => crate::i18n::t("invalid", "无效"),
            ImageState::Saved => crate::i18n::t("saved", "已保存"),
            ImageState::Copied => crate::i18n::t("copied", "已复制"),
        };
        let target = i
            .target
            .as_ref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        let detail = match (&i.reason, &i.digest) {
            (Some(why), _) => why.clone(),
            (None, Some(d)) => format!("{d}  {}", HumanBytes(i.bytes)),
            (None, None) => String::new(),
        };
        out.push_str(&format!("  [{state}] {}{target}  {detail}\n", i.source));
    }
    let c = |n: &crate::engine::report::BlobCount| (n.blobs, HumanBytes(n.bytes));
    let mut blob_lines: Vec<String> = Vec::new();
    if plan.fetch.blobs > 0 {
        let (n, b) = c(&plan.fetch);
        blob_lines.push(crate::tr!("{n} to fetch ({b})", "待拉取 {n} 个 ({b})"));
    }
    if plan.push.blobs > 0 {
        let (n, b) = c(&plan.push);
        blob_lines.push(crate::tr!("{n} to push ({b})", "待推送 {n} 个 ({b})"));
    }
    if plan.mount.blobs > 0 {
        let (n, b) = c(&plan.mount);
        blob_lines.push(crate::tr!("{n} to mount ({b})", "跨仓库挂载 {n} 个 ({b})"));
    }
    if plan.present.blobs > 0 {
        let (n, b) = c(&plan.present);
        blob_lines.push(crate::tr!(
            "{n} skipped, already there ({b})",
            "已存在而跳过 {n} 个 ({b})"
        ));
    }
    if plan.cached.blobs > 0 {
        let (n, b) = c(&plan.cached);
        blob_lines.push(crate::tr!(
            "{n} from the local cache ({b})",
            "来自本地缓存 {n} 个 ({b})"
        ));
    }
    if plan.from_bases.blobs > 0 {
        let (n, b) = c(&plan.from_bases);
        blob_lines.push(crate::tr!(
            "{n} left to base bundles ({b})",
            "由基础包提供 {n} 个 ({b})"
        ));
    }
    if blob_lines.is_empty() {
        blob_lines.push(crate::i18n::t("none to move", "无需传输").to_string());
    }
    out.push_str(&crate::tr!(
        "blobs: {}; {} manifests\n",
        "数据块: {}; 清单 {} 个\n",
        blob_lines.join(", "),
        plan.manifests
    ));
    if !plan.files.is_empty() {
        out.push_str(&crate::tr!(
            "data files: {} ({})\n",
            "数据文件: {} 个 ({})\n",
            plan.files.len(),
            plan.files
                .iter()
                .map(|s| HumanBytes(*s).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_serialize_with_every_common_key() {
        let mut d = Document::new("sync", chrono::Utc::now());
        d.images
            .push(ImageRecord::problem("a:1", "not found", ImageState::Failed));
        let v: serde_json::Value = serde_json::to_value(&d).unwrap();
        for key in [
            "command",
            "ok",
            "dry_run",
            "started",
            "elapsed_seconds",
            "source",
            "target",
            "totals",
            "images",
        ] {
            assert!(v.get(key).is_some(), "{key}: {v}");
        }
        assert_eq!(v["images"][0]["state"], "failed");
        assert_eq!(v["images"][0]["reason"], "not found");
        assert!(v.get("plan").is_none());
    }

    #[test]
    fn plans_say_what_would_move() {
        let mut plan = Plan::default();
        plan.fetch.add(2048);
        plan.present.add(10);
        plan.manifests = 1;
        let text = plan_text("sync", &[], &[], &plan);
        assert!(text.contains("1 to fetch (2.00 KiB)"), "{text}");
        assert!(text.contains("1 skipped, already there"), "{text}");
    }
}
