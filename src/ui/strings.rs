//! The page's words, in English and Chinese. The page asks for the table of the
//! chosen language (`/api/strings?lang=zh`) and switches without a reload; `{0}`,
//! `{1}`... are filled in by the page.

/// `(key, English, Chinese)`.
const STRINGS: &[(&str, &str, &str)] = &[
    ("footer", "ferry {0} · bundles in {1}", "ferry {0} · 镜像包目录 {1}"),
    ("nav.save", "Save", "保存"),
    ("nav.upload", "Upload", "上传"),
    ("nav.sync", "Sync", "同步"),
    ("nav.verify", "Verify", "校验"),
    ("nav.copy", "Copy", "复制"),
    ("nav.progress", "Progress", "进度"),
    ("nav.bundles", "Bundles", "镜像包"),
    ("nav.history", "History", "历史"),
    ("nav.registries", "Registries", "镜像仓库"),
    ("state.queued", "queued", "排队中"),
    ("state.running", "running", "运行中"),
    ("state.succeeded", "succeeded", "成功"),
    ("state.partial", "finished, some failed", "完成, 部分失败"),
    ("state.failed", "failed", "失败"),
    ("state.cancelled", "cancelled", "已取消"),
    ("state.interrupted", "interrupted", "已中断"),
    ("state.working", "in progress", "进行中"),
    ("state.done", "done", "完成"),
    ("state.stopped", "not finished", "未完成"),
    // forms
    ("form.command", "Equivalent command (the job runs exactly this):", "等效命令 (任务执行的正是这条命令):"),
    ("form.more", "More options", "更多选项"),
    ("form.list_file", "or load a list file:", "或载入列表文件:"),
    ("form.bundle", "Bundle", "镜像包"),
    ("form.dst", "Target registry", "目标镜像仓库"),
    ("form.dst_hint", "a target of cfg.yaml by name, or HOST[:PORT][/NAMESPACE]", "cfg.yaml 中的目标名称, 或 HOST[:PORT][/NAMESPACE]"),
    ("form.dst_placeholder", "registry.example.com:5000/team", "registry.example.com:5000/team"),
    ("form.platform", "Platforms", "平台"),
    ("form.platform_hint", "os/arch[,...]; empty keeps every platform", "os/arch[,...]; 留空保留所有平台"),
    ("form.referrers", "Also carry signatures, attestations and SBOMs", "同时携带签名、证明和 SBOM"),
    // save
    ("save.title", "Save images into a bundle", "把镜像保存为镜像包"),
    ("save.intro", "Save pulls images from a registry into a bundle: data files plus a meta.yaml that you carry across the air gap and upload on the other side.", "保存会从镜像仓库拉取镜像, 生成镜像包: 若干数据文件加一个 meta.yaml, 带过隔离网闸后在另一侧上传。"),
    ("save.step1", "Paste the images, one a line (e.g. registry.example.com/team/app:1.0).", "粘贴镜像, 每行一个 (例如 registry.example.com/team/app:1.0)。"),
    ("save.step2", "Press \"Save bundle\" and watch the progress.", "点击\"保存镜像包\", 查看进度。"),
    ("save.step3", "The bundle appears under Bundles, in {0}.", "镜像包出现在\"镜像包\"页中, 位于 {0}。"),
    ("save.list", "Images", "镜像"),
    ("save.list_hint", "one a line; # comments; SOURCE -> TARGET renames at upload", "每行一个; # 为注释; SOURCE -> TARGET 表示上传时改名"),
    ("save.list_placeholder", "registry.example.com/team/app:1.0\nregistry.example.com/team/db:2.3 -> infra/db:2.3", "registry.example.com/team/app:1.0\nregistry.example.com/team/db:2.3 -> infra/db:2.3"),
    ("save.src", "Source registry", "源镜像仓库"),
    ("save.src_hint", "from cfg.yaml; lines are then relative to it", "来自 cfg.yaml; 各行相对于该仓库"),
    ("save.src_none", "(the registry named in each reference)", "(使用每个引用中的镜像仓库)"),
    ("save.mode", "Kind of bundle", "镜像包类型"),
    ("save.full", "Full", "完整包"),
    ("save.incremental", "Incremental (only what a base bundle lacks)", "增量包 (只含基础包没有的内容)"),
    ("save.base", "Base bundle", "基础包"),
    ("save.base_hint", "layers it recorded are left out", "其中记录过的层不再保存"),
    ("save.no_bases", "No bundle yet to base an increment on.", "还没有可作为增量基础的镜像包。"),
    ("save.files", "Data files", "数据文件数"),
    ("save.files_hint", "blobs spread evenly", "数据块均匀分布"),
    ("save.max_file_size", "Largest data file", "数据文件大小上限"),
    ("save.max_file_size_hint", "e.g. 4G for FAT32 sticks", "例如 FAT32 U 盘用 4G"),
    ("save.compress", "Compression", "压缩"),
    ("save.compress_default", "as cfg.yaml says (none by default)", "按 cfg.yaml (默认不压缩)"),
    ("save.compress_none", "none", "不压缩"),
    ("save.prefix", "File name prefix", "文件名前缀"),
    ("save.sign", "Sign with SSH key", "用 SSH 密钥签名"),
    ("save.sign_hint", "writes META.sig; empty: cfg sign.key, if any", "生成 META.sig; 留空: 使用 cfg 的 sign.key (如有)"),
    ("save.start", "Save bundle", "保存镜像包"),
    // upload, sync, verify, copy
    ("upload.title", "Upload a bundle", "上传镜像包"),
    ("upload.intro", "Upload verifies the bundle, then pushes its images byte for byte into the target registry.", "上传会先校验镜像包, 再把其中的镜像逐字节推送到目标镜像仓库。"),
    ("upload.verify", "Check before pushing", "推送前检查"),
    ("upload.verify_full", "hash every data file (safe)", "计算每个数据文件的哈希 (稳妥)"),
    ("upload.verify_size", "sizes only (a trusted copy)", "只检查大小 (可信的副本)"),
    ("upload.lacks", "This bundle lacks {0} images that failed at save time:", "此镜像包缺少 {0} 个保存时失败的镜像:"),
    ("upload.allow_partial", "Push the images it has anyway (--allow-partial)", "仍然推送包中已有的镜像 (--allow-partial)"),
    ("upload.start", "Upload", "上传"),
    ("sync.title", "Sync registry to registry", "仓库到仓库同步"),
    ("sync.intro", "Sync copies images straight from one registry into another, without files.", "同步直接把镜像从一个仓库复制到另一个仓库, 不生成文件。"),
    ("sync.start", "Sync", "同步"),
    ("verify.title", "Verify a bundle", "校验镜像包"),
    ("verify.intro", "Checks a bundle as it arrived: every file present, sizes, and the sha256 of every file and blob.", "检查到达的镜像包: 文件是否齐全、大小, 以及每个文件和数据块的 sha256。"),
    ("verify.size_only", "Sizes only (fast)", "只检查大小 (快速)"),
    ("verify.start", "Verify", "校验"),
    ("copy.title", "Copy between any two places", "在任意两处之间复制"),
    ("copy.intro", "Copy with skopeo's syntax: docker://, oci:, docker-archive:, docker-daemon:, containerd:, bundle:.", "使用 skopeo 的写法复制: docker://、oci:、docker-archive:、docker-daemon:、containerd:、bundle:。"),
    ("copy.unavailable", "This version of ferry has no copy command yet.", "此版本的 ferry 还没有 copy 命令。"),
    ("copy.src", "From", "从"),
    ("copy.src_hint", "e.g. docker://HOST/REPO:TAG or bundle:META", "例如 docker://HOST/REPO:TAG 或 bundle:META"),
    ("copy.dst", "To", "到"),
    ("copy.dst_hint", "e.g. oci:DIR or docker-archive:FILE", "例如 oci:DIR 或 docker-archive:FILE"),
    ("copy.start", "Copy", "复制"),
    // progress
    ("progress.title", "Progress", "进度"),
    ("progress.none", "No job has run yet.", "还没有运行过任务。"),
    ("progress.show", "Show progress", "查看进度"),
    ("progress.cancel", "Cancel", "取消"),
    ("progress.again", "Run again", "再次运行"),
    ("progress.cancel_confirm", "Stop this job? What is done is kept; starting the same job again resumes it.", "停止此任务? 已完成的部分会保留; 再次启动同一任务即可继续。"),
    ("progress.resumable", "Stopped as by Ctrl-C: start the same job again to resume it.", "已像 Ctrl-C 一样停止: 再次启动同一任务即可继续。"),
    ("progress.done", "done", "已完成"),
    ("progress.bytes", "transferred", "已传输"),
    ("progress.speed", "speed", "速度"),
    ("progress.eta", "time left", "剩余时间"),
    ("progress.starting", "Starting…", "正在启动…"),
    ("progress.no_bars", "This job showed no progress bars.", "此任务没有进度条。"),
    ("progress.files", "Data files", "数据文件"),
    ("progress.images", "Images", "镜像"),
    ("progress.log", "Log", "日志"),
    ("progress.queue", "Waiting", "等待中"),
    ("progress.summary", "Summary", "汇总"),
    ("summary.total", "images", "镜像"),
    ("summary.succeeded", "succeeded", "成功"),
    ("summary.failed", "failed", "失败"),
    ("summary.bytes", "bytes", "数据量"),
    ("summary.time", "time", "用时"),
    ("col.image", "Image", "镜像"),
    ("col.state", "State", "状态"),
    ("col.reason", "Reason", "原因"),
    ("col.digest", "Digest", "摘要"),
    ("col.size", "Size", "大小"),
    ("col.own", "Own", "独有"),
    ("col.shared", "Shared", "共享"),
    ("col.in_bases", "In bases", "在基础包中"),
    ("col.file", "File", "文件"),
    ("col.job", "Job", "任务"),
    ("col.started", "Started", "开始"),
    ("col.finished", "Finished", "结束"),
    ("col.result", "Result", "结果"),
    // bundles
    ("bundles.title", "Bundles", "镜像包"),
    ("bundles.folder", "in {0}", "位于 {0}"),
    ("bundles.none", "No bundle in {0} yet.", "{0} 中还没有镜像包。"),
    ("bundles.full", "full", "完整包"),
    ("bundles.incremental", "incremental", "增量包"),
    ("bundles.images_n", "{0} images", "{0} 个镜像"),
    ("bundles.files_n", "{0} data files", "{0} 个数据文件"),
    ("bundles.failed_n", "{0} failed", "{0} 个失败"),
    ("bundles.referrers_n", "carries {0} signatures/attestations", "携带 {0} 个签名/证明"),
    ("bundles.chain", "Bases", "基础包链"),
    ("bundles.no_bases", "A full bundle: it needs no other bundle to upload.", "完整包: 上传时不需要其他镜像包。"),
    ("bundles.base_missing", "this base bundle is not in the folder", "目录中没有这个基础包"),
    ("bundles.base_mismatch", "a bundle of that name is here, but not the one this increment was based on", "目录中有同名镜像包, 但不是此增量包所基于的那个"),
    ("bundles.details", "Images, data files and failures", "镜像、数据文件和失败项"),
    ("bundles.failures", "Failed at save time", "保存时失败的镜像"),
    ("bundles.files", "Data files", "数据文件"),
    ("bundles.file_missing", "missing", "缺失"),
    ("bundles.signature", "Signature", "签名"),
    ("bundles.verify", "Verify", "校验"),
    ("bundles.upload", "Upload…", "上传…"),
    ("bundles.export", "Export as OCI layout…", "导出为 OCI 目录…"),
    ("bundles.export_prompt", "Write the OCI image layout into this folder:", "把 OCI 镜像目录写入此文件夹:"),
    ("bundles.sign", "Sign…", "签名…"),
    ("bundles.sign_prompt", "Sign with this OpenSSH private key (empty: cfg sign.key):", "用此 OpenSSH 私钥签名 (留空: 使用 cfg 的 sign.key):"),
    ("bundles.as_base", "Save an increment on this", "以此为基础保存增量包"),
    ("chart.title", "What the bytes are", "数据构成"),
    ("chart.bases", "layers in base bundles", "基础包中的层"),
    ("chart.shared", "shared by several images", "多个镜像共享"),
    ("chart.own", "{0} only", "仅 {0}"),
    ("chart.other", "signatures and other artifacts", "签名及其他制品"),
    ("sig.unsigned", "unsigned", "未签名"),
    ("sig.signed", "signed", "已签名"),
    ("sig.trusted", "signed, trusted", "已签名, 受信任"),
    ("sig.bad", "bad signature", "签名无效"),
    ("sig.untrusted", "untrusted signer", "签名者不受信任"),
    // history
    ("history.title", "History", "历史记录"),
    ("history.none", "No job yet.", "还没有任务。"),
    ("history.result", "{0}/{1} ok, {2} failed, {3}", "成功 {0}/{1}, 失败 {2}, {3}"),
    ("history.details", "Details", "详情"),
    ("history.progress", "Progress", "进度"),
    // registries
    ("reg.title", "Registries", "镜像仓库"),
    ("reg.file", "From {0}. Jobs use these by name.", "来自 {0}。任务按名称使用它们。"),
    ("reg.nofile", "{0} does not exist yet: adding a registry creates it.", "{0} 尚不存在: 添加镜像仓库时会创建它。"),
    ("reg.sources", "Sources (where images are saved from)", "源 (从这里保存镜像)"),
    ("reg.targets", "Targets (where bundles are uploaded)", "目标 (把镜像包上传到这里)"),
    ("reg.source_hint", "Save and Sync pull from these.", "保存和同步从这些仓库拉取。"),
    ("reg.target_hint", "Upload and Sync push into these.", "上传和同步推送到这些仓库。"),
    ("reg.empty", "None yet.", "暂无。"),
    ("reg.add", "Add", "添加"),
    ("reg.add_title.source", "New source registry", "新的源镜像仓库"),
    ("reg.add_title.target", "New target registry", "新的目标镜像仓库"),
    ("reg.edit_title", "Edit {0}", "编辑 {0}"),
    ("reg.name", "Name", "名称"),
    ("reg.name_hint", "what jobs call it; default: the host", "任务使用的名称; 默认为主机名"),
    ("reg.name_placeholder", "(the host)", "(主机名)"),
    ("reg.registry", "Registry", "镜像仓库地址"),
    ("reg.registry_hint", "https://HOST[:PORT] or http://HOST[:PORT]", "https://HOST[:PORT] 或 http://HOST[:PORT]"),
    ("reg.user", "User", "用户名"),
    ("reg.anonymous", "anonymous", "匿名"),
    ("reg.password", "Password", "密码"),
    ("reg.password_hint", "stored in cfg.yaml; ${VAR} reads an environment variable", "保存在 cfg.yaml 中; ${VAR} 表示读取环境变量"),
    ("reg.password_keep", "(unchanged)", "(不修改)"),
    ("reg.clear_password", "Remove the stored password", "删除已保存的密码"),
    ("reg.repository", "Namespace rewrite", "路径改写"),
    ("reg.repository_hint", "replaces the path before the image name at the target", "在目标端替换镜像名之前的路径"),
    ("reg.ca", "CA certificate file (PEM)", "CA 证书文件 (PEM)"),
    ("reg.insecure", "TLS not verified", "不校验 TLS"),
    ("reg.insecure_label", "Do not verify the TLS certificate (insecure)", "不校验 TLS 证书 (不安全)"),
    ("reg.test", "Test", "测试"),
    ("reg.testing", "Connecting…", "正在连接…"),
    ("reg.edit", "Edit", "编辑"),
    ("reg.delete", "Delete", "删除"),
    ("reg.delete_confirm", "Remove {0} from cfg.yaml?", "从 cfg.yaml 中删除 {0}?"),
    ("reg.save", "Save to cfg.yaml", "保存到 cfg.yaml"),
    ("reg.cancel", "Cancel", "取消"),
];

/// The table of one language, as the page wants it.
pub fn table(chinese: bool) -> serde_json::Value {
    serde_json::Value::Object(
        STRINGS
            .iter()
            .map(|(k, en, zh)| {
                (
                    (*k).to_string(),
                    serde_json::Value::String(if chinese { zh } else { en }.to_string()),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys the page builds from parts (`"state." + state`...).
    const DYNAMIC: &[&str] = &["nav.", "state.", "sig.", "reg.add_title.", "reg."];

    #[test]
    fn every_key_the_page_uses_is_in_both_languages() {
        let js = include_str!("assets/app.js");
        let keys: Vec<&str> = STRINGS.iter().map(|(k, _, _)| *k).collect();
        let mut missing = Vec::new();
        for part in js.split("t(\"").skip(1) {
            let Some(key) = part.split('"').next() else {
                continue;
            };
            if DYNAMIC.contains(&key) || !key.contains('.') && key != "footer" {
                continue;
            }
            if !keys.contains(&key) {
                missing.push(key.to_string());
            }
        }
        assert!(missing.is_empty(), "missing page strings: {missing:?}");
        for (k, en, zh) in STRINGS {
            assert!(!en.is_empty() && !zh.is_empty(), "{k}");
            assert_eq!(
                en.matches('{').count(),
                zh.matches('{').count(),
                "{k}: placeholders differ"
            );
        }
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "a key is listed twice");
    }
}
