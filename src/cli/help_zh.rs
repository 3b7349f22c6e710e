//! Chinese `--help` and usage errors. clap takes its texts from the English doc comments
//! in `args.rs`; when Chinese is chosen, the command tree is rewritten from the table
//! below before parsing. A test keeps the table complete: every command and argument
//! must have its entry, and no entry may name something that no longer exists.

use clap::builder::{Resettable, StyledStr};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command};
use std::error::Error as _;

/// Headings and layout of clap's default template, with Chinese headings.
const TEMPLATE: &str = "{before-help}{about-with-newline}\n用法: {usage}\n\n{all-args}{after-help}";
const OPTIONS: &str = "选项";
const ARGUMENTS: &str = "参数";

/// `(key, text)`: the key is a command path (`""` for ferry itself, `"save"`) for its
/// description, `"path --id"` for an argument (clap's id: the field name), `"* --id"`
/// for an argument several commands share (the source options of save and sync),
/// and `"@after"` for the text after ferry's own help. A text's first line is the short
/// help (`-h`); the whole text is the long help (`--help`).
const TEXTS: &[(&str, &str)] = &[
    // ferry itself
    (
        "",
        "把容器镜像带进物理隔离 (离线) 网络\n\
         \n\
         `ferry save` 从镜像仓库拉取镜像, 生成镜像包 (若干 tar 数据文件加一个 meta.yaml);\n\
         `ferry verify` 在传输后检查镜像包; `ferry upload` 先校验镜像包, 再把它逐字节原样\n\
         推送到对端的镜像仓库。`ferry save --inc OLD_META` 生成增量包, 只携带旧镜像包中\n\
         没有的数据块。",
    ),
    (
        "@after",
        "同样可以使用 image-transmit 的命令行:\n  \
         ferry -src=NAME [-lst=FILE] [-inc=META] [-out=PREFIX] [-opt=k=v,...]   save (无 -lst 时读标准输入)\n  \
         ferry -dst=NAME -img=META                                          upload\n\
         NAME 是 cfg.yaml 中的镜像仓库名 (--config FILE, 否则 ./cfg.yaml, 否则 ./data/cfg.yaml)。\n\n\
         退出状态: 0 全部成功, 1 有镜像或检查失败, 2 用法错误, 130 被中断。",
    ),
    (" --quiet", "只输出警告、错误和汇总, 不显示进度条"),
    (
        " --verbose",
        "输出更多细节: 每个镜像和每个数据块完成时各输出一行, 上传或同步后列出写入的每个引用",
    ),
    (
        " --progress_interval",
        "没有终端时 (CI 日志, journald), 每隔 SECS 秒输出一行进度 (字节数, 速度, \
         剩余时间, 已完成的镜像); 0 表示不输出。在终端上由进度条显示",
    ),
    (
        " --retries",
        "失败的请求最多重试几次 (连接错误, 5xx, 429, 响应体不完整) \
         [默认: cfg 的 `retries`, 否则 5]",
    ),
    (
        " --config",
        "批量任务的配置文件 (镜像仓库、凭据、路径改写、并发数...); 默认使用 ./cfg.yaml, \
         其次 ./data/cfg.yaml (如果存在)。参见 cfg.example.yaml",
    ),
    (
        " --opt",
        "为本次运行覆盖 cfg.yaml 中的键: key=value[,key=value...] (maxconn, retries, \
         singlefile, compressor, lang, outprefix, interval, platform, maxfilesize, files)",
    ),
    (" --connect_timeout", "连接镜像仓库时最多等待的秒数"),
    (
        " --read_timeout",
        "读取响应时, 连续多少秒收不到数据就重试该请求",
    ),
    (
        " --response_timeout",
        "小型响应 (清单、令牌、标签列表、错误信息) 总共最多用多少秒, \
         无论数据来得多慢; 超时则重试该请求",
    ),
    (
        " --min_rate",
        "下载数据块时, 在每个 --read-timeout 的等待窗口内平均每秒至少要收到的字节数, \
         否则重试 (断点续传); 上传按此速度计算其大小所需的时间。0 表示不限",
    ),
    (
        " --log_format",
        "日志行在标准错误上的写法: text (带时间戳的文本行, 终端上显示进度条) 或 json \
         (每行一个对象: time, level, message; 不显示进度条), 供日志收集系统使用",
    ),
    // save
    (
        "save",
        "从镜像仓库 (或 OCI 布局、docker 归档、镜像包) 拉取镜像, 生成镜像包: N 个 tar 数据文件加一个 meta.yaml",
    ),
    (
        "* --images",
        "镜像引用, 例如 nginx:1.27, registry.example.com:5000/team/app@sha256:...\n\
         也可以是标签选择器: REPO:* (全部标签), REPO:~正则, REPO:semver(>=1.2 <2), \
         其后可加 |newest(N) (只取最新的 N 个); !REPO:选择器 表示排除 (见 README 的 Tag selection)\n\
         save 还能读取本地镜像, 写法与 `ferry copy` 相同: oci:DIR[:REF], \
         docker-archive:FILE[:REF], docker-daemon:REF, bundle:META[:REF] (普通引用指镜像仓库中的镜像)",
    ),
    (
        "* --list",
        "从 FILE 读取镜像引用, 每行一个; `-` 表示读标准输入\n\
         忽略空行和 # 注释; `SOURCE -> TARGET` 表示改名。既没有 IMAGE 也没有 --list 时, \
         若标准输入不是终端, 则从标准输入读取引用; \
         都没有时使用 cfg 的 `images:`。每行都可以是标签选择器",
    ),
    (
        "* --src",
        "要拉取的源镜像仓库, 即 cfg.yaml 中的名称 [默认: cfg.yaml 中的第一个源]\n\
         此时列表中的行相对于该仓库 (repository:tag), 指向其他主机的完整引用也从该仓库拉取, \
         与 image-transmit 的做法相同",
    ),
    (
        "* --platform",
        "多平台镜像只保留这些平台: os/arch[/variant][,...] \
         [默认: cfg 的 `platform`, 否则全部平台]\n\
         只给一个平台时, 镜像会变成该平台自己的 manifest",
    ),
    (
        "* --cache",
        "本地数据块缓存目录, 先读缓存再访问网络 \
         [默认: cfg 的 `cache.pathname`, 位于 ./data 下]",
    ),
    (
        "* --with_referrers",
        "同时携带引用各镜像的签名、证明 (attestation) 和 SBOM [默认: cfg 的 `referrers`]\n\
         通过 OCI referrers API 查找; 不支持时使用 cosign 的 sha256-<hex>.sig/.att/.sbom 标签\
         和 OCI 回退标签",
    ),
    ("save --out", "存放镜像包的目录; 每次保存写入 DIR/YYYYMMDD/"),
    (
        "save --files",
        "数据块分散存放的 tar 数据文件个数 (按大小均衡) [默认: cfg 的 `files`; \
         cfg 设置 `singlefile: true` 时为 1, 否则 2]",
    ),
    (
        "save --max_file_size",
        "每个数据文件都不超过 SIZE (例如 FAT32 U 盘用 4G, 或 700M) \
         [默认: cfg 的 `maxfilesize`, 否则不限制]\n\
         镜像包需要几个数据文件就会写几个",
    ),
    ("save --jobs", "并发下载数 [默认: cfg 的 `maxconn`, 否则 8]"),
    (
        "save --prefix",
        "文件名前缀: PREFIX_full_YYYYMMDDHHMM_N.tar 和 PREFIX_full_YYYYMMDDHHMM_meta.yaml \
         [默认: cfg 的 `outprefix`, 否则 img]",
    ),
    (
        "save --compress",
        "压缩数据文件 [默认: cfg 的 `compressor`, 否则 none]\n\
         none: 普通 tar 数据文件\n\
         zstd: 用 zstd 压缩的 tar 数据文件 (.tar.zst); 每个条目是独立的 zstd 帧, \
         因此 upload 仍可单独读取每个数据块",
    ),
    (
        "save --bases",
        "生成增量包: 跳过该旧镜像包元数据中已记录的所有层和 config \
         (可多次指定, 对应多个基础包)\n\
         manifest 总是会携带",
    ),
    // upload
    (
        "upload",
        "校验镜像包, 然后把它逐字节原样推送到镜像仓库",
    ),
    ("upload --meta", "镜像包的元数据文件 (..._meta.yaml), 或只含一个镜像包的目录"),
    (
        "upload --dst",
        "目标: cfg.yaml 中目标镜像仓库的名称, `docker` (本机 docker 守护进程), \
         `containerd[:NS]` (本机 containerd, 通过 `ctr` 导入, 命名空间 NS, 默认 `default`), \
         或 HOST[:PORT][/NAMESPACE] [默认: cfg.yaml 中的第一个目标]\n\
         `docker` 通过 docker 的 socket 连接, 或使用 DOCKER_HOST=unix://PATH; \
         `containerd` 通过其 socket 连接, 或使用 CONTAINERD_ADDRESS=PATH。\
         带 NAMESPACE 时, app/web:1.0 会推送到 HOST/NAMESPACE/app/web:1.0。\
         回环地址 (loopback) 使用明文 HTTP, 除非写成 https://HOST",
    ),
    (
        "upload --jobs",
        "数据块并发上传数 [默认: cfg 的 `maxconn`, 否则 8]; 往返延迟高时 (广域网) 小数据块和请求的并发会自动提高, 最多到 8×N, 大文件传输不会",
    ),
    (
        "upload --verify",
        "如何校验镜像包。推送前两者都检查文件、大小和 tar 结构是否与元数据相符; 每个推送的\
         数据块都在流出时按其摘要校验 (每个字节只读一次), 校验通过前不完成上传\n\
         full: 有任何数据块损坏, 整个镜像包被拒绝: 不写入任何清单, 不设置任何标签 (默认)\n\
         size: 损坏的数据块只让需要它的镜像失败 (用于可信的拷贝)",
    ),
    (
        "upload --allow_partial",
        "推送缺少镜像的镜像包 (保存时失败的镜像, 记录在其元数据中);          不加此选项时, 这样的镜像包在推送任何内容之前即被拒绝",
    ),
    // verify
    (
        "verify",
        "检查传输后的镜像包: 文件是否齐全、大小, 以及每个文件和每个数据块的 sha256",
    ),
    ("verify --meta", "镜像包的元数据文件 (..._meta.yaml), 或只含一个镜像包的目录"),
    ("verify --size_only", "只检查文件是否存在及其大小, 不校验摘要"),
    // copy
    (
        "copy",
        "在任意两种传输方式之间复制镜像, 语法与 skopeo 相同: docker://REF, oci:DIR[:REF],\n\
         docker-archive:FILE[:REF], docker-daemon:REF, containerd:REF, bundle:META[:REF] (仅作为源)",
    ),
    (
        "copy --src",
        "镜像来源: docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF], docker-archive:FILE[:REF],\n\
         docker-daemon:REF, bundle:META[:IMAGE] (不写 IMAGE 时为镜像包中的全部镜像)",
    ),
    (
        "copy --dst",
        "复制目标: 单个镜像用 docker://HOST/REPO[:TAG] (标签默认与源相同), 整个镜像包用\n\
         docker://HOST[/NAMESPACE], 以及 oci:DIR[:REF], docker-archive:FILE[:REF],\n\
         docker-daemon:REF, containerd:REF (命名空间: $CONTAINERD_NAMESPACE, 否则 default)",
    ),
    (
        "copy --all",
        "复制多平台镜像的所有平台 (镜像仓库和 OCI 布局在不加 --platform 时也是如此); \
         归档文件和容器引擎只能保存一个平台, 会拒绝此选项",
    ),
    (
        "copy --platform",
        "只保留多平台镜像中的这些平台: os/arch[/variant][,...] \
         [默认: 镜像仓库和布局为全部平台, 归档文件和引擎为本机平台]",
    ),
    ("copy --with_referrers", "同时复制引用每个镜像的签名、证明和 SBOM"),
    ("copy --base_dirs", "增量镜像包源的基础包所在目录 (除其自身目录外)"),
    (
        "copy --jobs",
        "数据块并发复制数 [默认: cfg 的 `maxconn`, 否则 8]; 往返延迟高时 (广域网) 小数据块和请求的并发会自动提高, 最多到 8×N, 大文件传输不会",
    ),
    // sync
    (
        "sync",
        "在镜像仓库之间直接复制镜像 (不生成文件), 使用同一引擎; --interval 可让它持续运行",
    ),
    (
        "sync --dst",
        "目标: cfg.yaml 中目标的名称, 或 HOST[:PORT][/NAMESPACE] \
         [默认: cfg.yaml 中的第一个目标]",
    ),
    (
        "sync --jobs",
        "数据块并发复制数 [默认: cfg 的 `maxconn`, 否则 8]; 往返延迟高时 (广域网) 小数据块和请求的并发会自动提高, 最多到 8×N, 大文件传输不会",
    ),
    (
        "sync --interval",
        "持续运行: 每隔 DURATION (例如 30s, 5m, 1h; 纯数字表示秒) 重新解析标签, \
         复制有变化的内容\n\
         Ctrl-C 或 SIGTERM 会在两个数据块之间干净地停止 (退出状态 0)",
    ),
    (
        "sync --watch",
        "按 cfg 的 `interval` 秒数 (默认 60) 持续运行, 同 image-transmit 的 -watch",
    ),
    (
        "sync --listen",
        "持续运行并在 ADDR (HOST:PORT) 的 POST /events 接收镜像仓库的推送通知 \
         (docker-registry 的 `notifications:` 端点、Harbor 的 webhook): 列表中的镜像被推送后几秒内即同步\n\
         同一地址还提供 GET /metrics (Prometheus) 和 GET /healthz; 同时给出 --interval 时仍按间隔做完整同步作为兜底",
    ),
    (
        "sync --events_secret",
        "POST /events 必须在 Authorization 请求头中携带的密钥 (SECRET 或 `Bearer SECRET`); \
         不设置时, 任何能访问 ADDR 的客户端都能触发同步",
    ),
    ("sync --max_connections", "同时服务的最大连接数; 已满时关闭空闲最久的连接 (请求之间保持的连接), 否则关闭让服务器等待已达 10 秒的连接 (客户端不接收应答, 或仍在缓慢发送请求体), 以接待新客户端; 全部繁忙时新客户端等待"),
    (
        "sync --header_timeout",
        "客户端发送请求头的时限 (也是保持连接在两个请求之间可空闲的时长): 30s、5m 或秒数",
    ),
    ("sync --idle_timeout", "连接上在这段时间内双向都没有任何字节传输时关闭"),
    (
        "sync --tls_cert",
        "用此证书链提供 HTTPS (PEM, 服务器证书在前); 需要同时给出 --tls-key",
    ),
    ("sync --tls_key", "--tls-cert 的私钥 (PEM)"),
    // export
    (
        "export",
        "把镜像包中的镜像写成 OCI 镜像布局 (OCI image layout) 或 `docker load` 归档",
    ),
    ("export --meta", "镜像包的元数据文件, 或只含一个镜像包的目录"),
    (
        "export --images",
        "要导出的镜像, 写法与镜像包中的记录相同 (保存时给出的引用, 或 repository:tag); \
         不指定时导出镜像包中的全部镜像 (仅限 --oci)",
    ),
    (
        "export --oci",
        "把 OCI 镜像布局写入 DIR (index.json 中的条目以 repository:tag 命名)",
    ),
    ("export --docker_archive", "把 `docker load` 归档写入 FILE"),
    (
        "export --oci_media_types",
        "用于 --oci: 把 docker 类型的镜像转换为 OCI 媒体类型 (skopeo 和 podman 只读取 \
         OCI 目录中 OCI 类型的条目)\n\
         这会写出新的清单, 因此其摘要会改变, 为原清单所做的签名不再匹配; config 和层保持不变",
    ),
    (
        "export --base_dirs",
        "增量包的基础包所在目录 (默认: 与镜像包在同一目录)",
    ),
    (
        "export --platform",
        "用于 --docker-archive: 多平台镜像选用的平台 [默认: 本机的平台]",
    ),
    // ls
    ("ls", "列出镜像包的内容: 镜像、数据文件、基础包、失败项"),
    ("ls --meta", "镜像包的元数据文件, 或只含一个镜像包的目录"),
    // serve
    (
        "serve",
        "把镜像包 (及其基础包) 作为只读镜像仓库提供服务, 直接从 tar 文件流式读取",
    ),
    ("serve --meta", "镜像包的元数据文件, 或只含一个镜像包的目录"),
    ("serve --listen", "监听地址"),
    (
        "serve --base_dirs",
        "增量包的基础包所在目录 (默认: 与镜像包在同一目录)",
    ),
    ("serve --max_connections", "同时服务的最大连接数; 已满时关闭空闲最久的连接 (请求之间保持的连接), 否则关闭让服务器等待已达 10 秒的连接 (客户端不接收应答, 或仍在缓慢发送请求体), 以接待新客户端; 全部繁忙时新客户端等待"),
    (
        "serve --header_timeout",
        "客户端发送请求头的时限 (也是保持连接在两个请求之间可空闲的时长): 30s、5m 或秒数",
    ),
    ("serve --idle_timeout", "连接上在这段时间内双向都没有任何字节传输时关闭"),
    (
        "serve --tls_cert",
        "用此证书链提供 HTTPS (PEM, 服务器证书在前); 需要同时给出 --tls-key",
    ),
    ("serve --tls_key", "--tls-cert 的私钥 (PEM)"),
    // ui
    (
        "ui",
        "在浏览器中使用的本地 Web 界面: 镜像仓库、保存、上传、同步、校验、复制、实时进度、\
         镜像包和历史记录, 与这些命令使用同一引擎",
    ),
    (
        "ui --listen",
        "监听地址。请保持在回环地址上: 持有启动时打印的访问令牌的人可以发起传输并修改 cfg.yaml",
    ),
    ("ui --open", "在默认浏览器中打开界面 (xdg-open)"),
    (
        "ui --out",
        "镜像包目录: 保存到 DIR/YYYYMMDD/, \"镜像包\"页列出其中的内容, \
         任务历史和镜像列表保存在 DIR/.ferry-ui/ 中",
    ),
    ("ui --max_connections", "同时服务的最大连接数; 已满时关闭空闲最久的连接 (请求之间保持的连接), 否则关闭让服务器等待已达 10 秒的连接 (客户端不接收应答, 或仍在缓慢发送请求体), 以接待新客户端; 全部繁忙时新客户端等待"),
    (
        "ui --header_timeout",
        "客户端发送请求头的时限 (也是保持连接在两个请求之间可空闲的时长): 30s、5m 或秒数",
    ),
    ("ui --idle_timeout", "连接上在这段时间内双向都没有任何字节传输时关闭"),
    (
        "ui --tls_cert",
        "用此证书链提供 HTTPS (PEM, 服务器证书在前); 需要同时给出 --tls-key",
    ),
    ("ui --tls_key", "--tls-cert 的私钥 (PEM)"),
    // inspect
    (
        "inspect",
        "查看镜像仓库中的镜像: 摘要、媒体类型、平台、层 (--raw: manifest 的原始字节)",
    ),
    ("inspect --image", "镜像引用"),
    ("inspect --raw", "按镜像仓库返回的原样输出 manifest"),
    ("inspect --json", "以 JSON 格式输出详情"),
    (
        "* --json",
        "在标准输出上打印一个 JSON 文档代替文本: 每个镜像的来源、目标、摘要、字节数、状态及失败原因; \
         文件; 用时 (格式见 README 的 \"JSON output\")",
    ),
    (
        "* --dry_run",
        "只解析并规划: 打印将要拉取、推送、因目标已有而跳过、跨仓库挂载的内容及其大小; 不写入任何内容",
    ),
    (
        "sync --dry_run",
        "只解析并规划一轮: 打印将要拉取、推送、因目标已有而跳过、跨仓库挂载的内容及其大小; \
         不推送任何内容",
    ),
    (
        "save --dry_run",
        "只解析并规划: 打印将要拉取 (或取自缓存、由基础包提供) 的内容及大小, 以及数据文件的划分; \
         不写入任何内容",
    ),
    // tags
    ("tags", "列出镜像仓库中某个仓库的标签"),
    (
        "tags --repository",
        "仓库, 例如 registry.example.com:5000/team/app",
    ),
    // login
    (
        "login",
        "把镜像仓库的凭据保存到 docker 的 config.json (与 docker 和 skopeo 共用)",
    ),
    (
        "login --registry",
        "镜像仓库 host[:port], 例如 registry.example.com:5000",
    ),
    ("login --username", "用户名"),
    (
        "login --password_stdin",
        "从标准输入读取密码 (一行), 以免密码留在 shell 历史中",
    ),
    (
        "login --no_check",
        "不向镜像仓库验证凭据就保存 (用于当前连不上的镜像仓库)",
    ),
    // logout
    ("logout", "从 docker 的 config.json 以及 ferry 读取的 containers auth.json 文件 (skopeo、podman 的) 中删除镜像仓库的凭据"),
    ("logout --registry", "镜像仓库 host[:port]"),
    // completions
    (
        "completions",
        "输出 shell 补全脚本: ferry completions bash > /etc/bash_completion.d/ferry",
    ),
    ("completions --shell", "要生成补全脚本的 shell"),
    // signatures
    (
        "sign",
        "为已保存的镜像包签名: 写出 META.sig, 即对元数据的 SSH 签名 (`ssh-keygen -Y sign`, \
         命名空间 ferry-bundle); 元数据记录了每个数据文件的 sha256",
    ),
    ("sign --meta", "镜像包的元数据文件 (或只含一个镜像包的目录); 签名写在其旁边, 名为 META.sig"),
    (
        "sign --key",
        "用于签名的 OpenSSH 私钥 (Ed25519、ECDSA 或 RSA, 即 ssh-keygen 生成的格式; \
         加密的私钥会在终端上询问密码) [默认: cfg 的 `sign.key`]",
    ),
    (
        "sign --passphrase_env",
        "从此环境变量读取私钥的密码 [默认: cfg 的 `sign.passphrase_env`]",
    ),
    (
        "save --sign",
        "为镜像包签名: 用此 OpenSSH 私钥对元数据生成 SSH 签名 META.sig (与 \
         `ssh-keygen -Y sign -n ferry-bundle` 相同); 加密私钥的密码在保存开始前询问 \
         [默认: cfg 的 `sign.key`]",
    ),
    (
        "save --trust",
        "与 --inc 一起使用: 基础包的 META.sig 若不是此 OpenSSH allowed_signers 文件中某个密钥\
         的有效签名, 则在下载任何内容之前拒绝该基础包 [默认: cfg 的 `trust`]",
    ),
    (
        "* --trust",
        "除非 META.sig 是此 OpenSSH allowed_signers 文件中某个密钥的有效 SSH 签名 \
         (命名空间 ferry-bundle), 否则拒绝该镜像包\n\
         在读取或推送镜像包的任何内容之前检查; 读取增量包的基础包时也检查基础包 \
         [默认: cfg 的 `trust`]",
    ),
    (
        "ls --trust",
        "同时用此 OpenSSH allowed_signers 文件核对签名的密钥, 并给出签名者 \
         [默认: cfg 的 `trust`]",
    ),
    (
        "* --require_cosign",
        "只推送带有此公钥 (cosign.pub: PEM, ECDSA P-256) 所做 cosign 签名、\
         且签名内容指明该镜像清单摘要的镜像; 其余镜像以失败告终并给出原因\n\
         签名是 cosign 的 sha256-<hex>.sig 镜像 (upload 时: 需用 --with-referrers 保存)",
    ),
];

fn text(key: &str) -> Option<&'static str> {
    TEXTS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// An argument's text: its command's own, else the shared one.
fn arg_text(path: &str, id: &str) -> Option<&'static str> {
    text(&format!("{path} --{id}")).or_else(|| text(&format!("* --{id}")))
}

/// Sets a short help (first line) and a long help (all of it) from one text.
fn split(text: &str) -> (String, Option<String>) {
    let first = text.lines().next().unwrap_or_default().to_string();
    let long = (text.contains('\n')).then(|| text.to_string());
    (first, long)
}

/// The command tree with Chinese texts; `--help`, `-V` and the `help` subcommand too.
pub fn localize(cmd: Command) -> Command {
    let mut cmd = localize_at(cmd, "").disable_version_flag(true).arg(
        Arg::new("version")
            .short('V')
            .long("version")
            .action(ArgAction::Version)
            .help("显示版本")
            .help_heading(OPTIONS),
    );
    if let Some(after) = text("@after") {
        cmd = cmd.after_help(after).after_long_help(after);
    }
    // The `help` subcommand only exists once the command is built.
    cmd.build();
    if cmd.find_subcommand("help").is_some() {
        const HELP_ABOUT: &str = "显示此帮助, 或指定子命令的帮助";
        cmd = cmd.mut_subcommand("help", |help| {
            let help = help
                .about(HELP_ABOUT)
                .help_template(TEMPLATE)
                .subcommand_help_heading("命令")
                .mut_args(|a| a.help("要查看帮助的子命令").help_heading(ARGUMENTS));
            // `ferry help help` lists the help tree, which has a `help` of its own.
            if help.find_subcommand("help").is_some() {
                help.mut_subcommand("help", |inner| inner.about(HELP_ABOUT))
            } else {
                help
            }
        });
    }
    cmd
}

fn localize_at(cmd: Command, path: &str) -> Command {
    let mut cmd = cmd
        .help_template(TEMPLATE)
        .subcommand_help_heading("命令")
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::Help)
                .help("显示帮助 (--help 显示更详细的说明)")
                .help_heading(OPTIONS),
        );
    if let Some(about) = text(path) {
        let (short, long) = split(about);
        cmd = cmd.about(short).long_about(resettable(long));
    }
    let path_owned = path.to_string();
    // Under a custom heading clap sorts by display order, then name: keep the
    // positionals in their command-line order.
    let mut position = 0;
    cmd = cmd.mut_args(move |arg| {
        let arg = if arg.is_positional() {
            position += 1;
            arg.display_order(position)
        } else {
            arg
        };
        localize_arg(arg, &path_owned)
    });
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |sub| localize_at(sub, &sub_path));
    }
    cmd
}

fn localize_arg(arg: Arg, path: &str) -> Arg {
    let id = arg.get_id().as_str().to_string();
    if id == "help" || id == "version" {
        return arg;
    }
    let heading = if arg.is_positional() {
        ARGUMENTS
    } else {
        OPTIONS
    };
    let mut arg = arg.help_heading(heading);
    let Some(text) = arg_text(path, &id) else {
        return arg;
    };
    let (mut short, mut long) = split(text);
    // clap writes "[default: ...]" and "[possible values: ...]" in English: say it here.
    // Flags (--quiet) take no value: clap rejects these settings on them, and before the
    // command is built it still reports `true`/`false` as their possible values.
    let takes_values = arg.get_action().takes_values();
    let mut notes = Vec::new();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if takes_values && !defaults.is_empty() && !arg.is_hide_default_value_set() {
        notes.push(format!("[默认: {}]", defaults.join(", ")));
        arg = arg.hide_default_value(true);
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if takes_values && !values.is_empty() && !arg.is_hide_possible_values_set() {
        notes.push(format!("[可选值: {}]", values.join(", ")));
        arg = arg.hide_possible_values(true);
    }
    if !notes.is_empty() {
        let notes = notes.join(" ");
        short = format!("{short} {notes}");
        long = long.map(|l| format!("{l}\n{notes}"));
    }
    arg.help(short).long_help(resettable(long))
}

fn resettable(text: Option<String>) -> Resettable<StyledStr> {
    match text {
        Some(t) => Resettable::Value(t.into()),
        None => Resettable::Reset,
    }
}

/// clap's usage error in Chinese; help and version requests are passed through.
pub fn render_error(err: &clap::Error) -> Option<String> {
    let arg = || context(err, ContextKind::InvalidArg);
    let value = || context(err, ContextKind::InvalidValue);
    let message = match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::UnknownArgument => format!("未知参数 '{}'", arg()),
        ErrorKind::InvalidSubcommand => {
            format!(
                "未知子命令 '{}'",
                context(err, ContextKind::InvalidSubcommand)
            )
        }
        ErrorKind::InvalidValue if value().is_empty() => format!("{} 需要一个值", arg()),
        ErrorKind::InvalidValue => {
            let valid = context(err, ContextKind::ValidValue);
            if valid.is_empty() {
                format!("{} 的值 '{}' 无效", arg(), value())
            } else {
                format!("{} 的值 '{}' 无效 (可选值: {valid})", arg(), value())
            }
        }
        ErrorKind::ValueValidation => {
            let why = err
                .source()
                .map(|s| format!(": {}", value_problem(&s.to_string())))
                .unwrap_or_default();
            format!("{} 的值 '{}' 无效{why}", arg(), value())
        }
        ErrorKind::MissingRequiredArgument => format!("缺少必需的参数: {}", arg()),
        ErrorKind::MissingSubcommand => "缺少子命令".to_string(),
        ErrorKind::ArgumentConflict => format!(
            "{} 不能与 {} 同时使用",
            arg(),
            context(err, ContextKind::PriorArg)
        ),
        ErrorKind::NoEquals => format!("{} 需要用 '=' 给出值", arg()),
        ErrorKind::TooManyValues => format!("{} 的值过多: '{}'", arg(), value()),
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("{} 的值的个数不对", arg())
        }
        ErrorKind::InvalidUtf8 => "参数不是有效的 UTF-8".to_string(),
        _ => {
            // Anything rarer: clap's own words, after a Chinese heading.
            let rendered = err.render().to_string();
            let body = rendered.trim_start_matches("error: ").trim_end();
            return Some(format!("错误: {body}\n"));
        }
    };
    let usage = context(err, ContextKind::Usage).replacen("Usage:", "用法:", 1);
    let mut out = format!("错误: {message}\n");
    for tip in tips(err) {
        out.push_str(&format!("\n  提示: {tip}\n"));
    }
    if !usage.is_empty() {
        out.push_str(&format!("\n{usage}\n"));
    }
    out.push_str("\n更多信息请使用 '--help'\n");
    Some(out)
}

/// clap's "did you mean" hints, in Chinese: a similar argument, subcommand or value,
/// and how to pass a value that starts with `-`.
fn tips(err: &clap::Error) -> Vec<String> {
    let mut out = Vec::new();
    let quoted = |kind| {
        let v = context(err, kind);
        (!v.is_empty()).then(|| {
            v.split(", ")
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    if let Some(s) = quoted(ContextKind::SuggestedSubcommand) {
        out.push(format!("有相似的子命令: {s}"));
    }
    if let Some(s) = quoted(ContextKind::SuggestedArg) {
        out.push(format!("有相似的参数: {s}"));
    }
    if let Some(s) = quoted(ContextKind::SuggestedValue) {
        out.push(format!("有相似的值: {s}"));
    }
    // Free-form tips, in clap's words: "to pass 'X' as a value, use '-- X'" and
    // "'SUB --flag' exists".
    if let Some(ContextValue::StyledStrs(list)) = err.get(ContextKind::Suggested) {
        for tip in list.iter().map(|s| s.to_string()) {
            if tip.starts_with("to pass '") {
                let arg = context(err, ContextKind::InvalidArg);
                out.push(format!("如果 '{arg}' 是一个值, 请写成 '-- {arg}'"));
            } else if let Some(what) = tip.strip_suffix(" exists") {
                out.push(format!("{what} 是存在的"));
            }
        }
    }
    out
}

/// Why a value was refused, from clap's range check ("0 is not in 1..=256") or
/// Rust's number parsing, in Chinese.
fn value_problem(english: &str) -> String {
    let known = [
        ("invalid digit found in string", "含有无效的数字"),
        ("cannot parse integer from empty string", "值为空"),
        ("number too large to fit in target type", "数值过大"),
        ("number too small to fit in target type", "数值过小"),
    ];
    if let Some((_, chinese)) = known.iter().find(|(e, _)| *e == english) {
        return chinese.to_string();
    }
    if let Some((value, range)) = english.split_once(" is not in ") {
        return format!("{value} 不在范围 {range} 内");
    }
    format!("({english})")
}

fn context(err: &clap::Error, kind: ContextKind) -> String {
    match err.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        Some(ContextValue::StyledStr(s)) => s.to_string(),
        Some(ContextValue::StyledStrs(v)) => v
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Some(ContextValue::Number(n)) => n.to_string(),
        Some(ContextValue::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::Cli;
    use clap::CommandFactory;

    /// Every command path, and every (command path, argument id) of a visible argument.
    fn keys(cmd: &Command, path: &str, out: &mut Vec<(String, Option<String>)>) {
        out.push((path.to_string(), None));
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if path.is_empty() || !arg.is_global_set() {
                out.push((path.to_string(), Some(id.to_string())));
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = if path.is_empty() {
                sub.get_name().to_string()
            } else {
                format!("{path} {}", sub.get_name())
            };
            keys(sub, &sub_path, out);
        }
    }

    #[test]
    fn every_command_and_argument_has_chinese_help_and_no_entry_is_stale() {
        let mut expected = Vec::new();
        keys(&Cli::command(), "", &mut expected);
        let missing: Vec<String> = expected
            .iter()
            .filter(|(path, id)| match id {
                None => text(path).is_none(),
                Some(id) => arg_text(path, id).is_none(),
            })
            .map(|(path, id)| format!("{path} --{}", id.as_deref().unwrap_or("")))
            .collect();
        assert!(missing.is_empty(), "no Chinese text for: {missing:#?}");
        // An entry is used when a command or argument takes its text from it.
        let used = |key: &str| {
            expected.iter().any(|(path, id)| match id {
                None => path == key,
                Some(id) => {
                    let own = format!("{path} --{id}");
                    own == key || (text(&own).is_none() && key == format!("* --{id}"))
                }
            })
        };
        let stale: Vec<&str> = TEXTS
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| *k != "@after" && !used(k))
            .collect();
        assert!(stale.is_empty(), "Chinese texts for nothing: {stale:#?}");
        let mut seen = std::collections::HashSet::new();
        let twice: Vec<&str> = TEXTS
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| !seen.insert(*k))
            .collect();
        assert!(twice.is_empty(), "entries given twice: {twice:?}");
    }

    #[test]
    fn localized_help_renders_in_chinese() {
        let mut cmd = localize(Cli::command());
        let help = cmd.render_long_help().to_string();
        assert!(help.contains("用法:"), "{help}");
        assert!(help.contains("命令:"), "{help}");
        assert!(!help.contains("Usage:"), "{help}");
        let save = cmd
            .find_subcommand_mut("save")
            .expect("save subcommand")
            .render_long_help()
            .to_string();
        assert!(save.contains("选项:"), "{save}");
        assert!(!save.contains("Options:"), "{save}");
        assert!(!save.contains("[default:"), "{save}");
    }

    #[test]
    fn usage_errors_are_in_chinese() {
        let cmd = localize(Cli::command());
        let err = cmd
            .try_get_matches_from(["ferry", "save", "--no-such-flag"])
            .expect_err("unknown flag");
        let text = render_error(&err).expect("a usage error");
        assert!(text.contains("未知参数 '--no-such-flag'"), "{text}");
        assert!(text.contains("用法: ferry save"), "{text}");
        // clap's "did you mean" survives the translation.
        let err = localize(Cli::command())
            .try_get_matches_from(["ferry", "save", "--lisst", "x"])
            .expect_err("misspelt flag");
        let text = render_error(&err).expect("a usage error");
        assert!(text.contains("提示: 有相似的参数: '--list'"), "{text}");
        let err = localize(Cli::command())
            .try_get_matches_from(["ferry", "uplaod"])
            .expect_err("misspelt subcommand");
        let text = render_error(&err).expect("a usage error");
        assert!(text.contains("'upload'"), "{text}");
    }
}
