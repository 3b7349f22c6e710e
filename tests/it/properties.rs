//! Property tests of the parsers that read outside input (#16): ferry's and
//! image-transmit's meta parsers, the tar scanner, the zstd frame walker, the
//! manifest and reference parsers, the HTTP Range parser and the text sanitizer.
//! For every input: no panic; and where a format can be written, what is written
//! reads back the same. `scripts/fuzz.sh` drives the same entry points with a
//! coverage-guided fuzzer for longer runs.

use ferry::bundle::compress;
use ferry::bundle::layout;
use ferry::bundle::meta::{
    BaseRef, BlobKind, BlobRecord, ChildManifest, DataFile, Failure, Image, Kind, Meta,
};
use ferry::bundle::reader::Scan;
use ferry::digest::Digest;
use ferry::manifest::RawManifest;
use ferry::reference::Reference;
use ferry::serve::{parse_range, Wanted};
use proptest::prelude::*;
use std::io::Cursor;

// ---------------------------------------------------------------------------
// Strategies

fn digest() -> impl Strategy<Value = Digest> {
    any::<u64>().prop_map(|n| Digest::of(&n.to_le_bytes()))
}

fn repository() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((\\.|_|__|-{1,2})[a-z0-9]{1,4}){0,2}(/[a-z0-9]{1,6}((\\.|_|__|-{1,2})[a-z0-9]{1,4}){0,1}){0,2}"
}

fn tag() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}"
}

fn host() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}(\\.[a-z]{1,4}){0,2}(:[1-9][0-9]{0,3})?"
}

fn file_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,30}"
}

fn media_type() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        ferry::manifest::OCI_MANIFEST.to_string(),
        ferry::manifest::OCI_INDEX.to_string(),
        ferry::manifest::DOCKER_MANIFEST.to_string(),
        ferry::manifest::DOCKER_MANIFEST_LIST.to_string(),
    ])
}

fn image() -> impl Strategy<Value = Image> {
    (
        any::<String>(),
        host(),
        repository(),
        prop::option::of(tag()),
        digest(),
        media_type(),
        prop::option::of((repository(), prop::option::of(tag()))),
        prop::option::of(digest()),
        prop::collection::vec(
            (digest(), media_type(), prop::option::of(any::<String>())),
            0..3,
        ),
    )
        .prop_map(
            |(
                reference,
                registry,
                repository,
                tag,
                digest,
                media_type,
                target,
                subject,
                children,
            )| {
                Image {
                    reference,
                    registry,
                    repository,
                    tag,
                    digest,
                    media_type,
                    target: target.map(|(r, t)| match t {
                        Some(t) => format!("{r}:{t}"),
                        None => r,
                    }),
                    subject,
                    children: children
                        .into_iter()
                        .map(|(digest, media_type, platform)| ChildManifest {
                            digest,
                            media_type,
                            platform,
                        })
                        .collect(),
                }
            },
        )
}

fn meta() -> impl Strategy<Value = Meta> {
    let files = prop::collection::vec(
        (file_name(), any::<u64>(), "[0-9a-f]{64}", any::<u64>()),
        1..4,
    );
    (
        (any::<String>(), any::<String>(), file_name(), any::<bool>()),
        prop::collection::vec(file_name(), 0..3),
        prop::collection::vec(any::<String>(), 0..3),
        files,
        prop::collection::vec(image(), 0..4),
        prop::collection::vec(
            (
                digest(),
                any::<u64>(),
                0..3u8,
                any::<prop::sample::Index>(),
                any::<bool>(),
                prop::option::of(file_name()),
                prop::option::of(repository()),
                prop::option::of(any::<u64>()),
            ),
            0..6,
        ),
        prop::collection::vec((any::<String>(), any::<String>()), 0..3),
    )
        .prop_filter_map(
            "plain file names",
            |((tool, created, name, full), bases, platforms, files, images, blobs, failed)| {
                let plain = |n: &String| n != "." && n != "..";
                if !plain(&name) || !files.iter().all(|f| plain(&f.0)) || !bases.iter().all(plain) {
                    return None;
                }
                let files: Vec<DataFile> = files
                    .into_iter()
                    .map(|(name, size, sha256, blobs)| DataFile {
                        name,
                        size,
                        sha256,
                        headers_sha256: None,
                        blobs,
                    })
                    .collect();
                let blobs = blobs
                    .into_iter()
                    .map(|(digest, size, kind, file, in_file, base, repo, offset)| {
                        if base.as_ref().is_some_and(|b| !plain(b)) {
                            return None;
                        }
                        Some(BlobRecord {
                            digest,
                            size,
                            kind: [BlobKind::Manifest, BlobKind::Config, BlobKind::Layer]
                                [usize::from(kind)],
                            file: in_file.then(|| file.get(&files).name.clone()),
                            base,
                            repository: repo.unwrap_or_default(),
                            offset,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Meta {
                    format: ferry::bundle::meta::FORMAT_NAME.into(),
                    version: ferry::bundle::meta::FORMAT_VERSION,
                    tool,
                    created,
                    name,
                    kind: if full { Kind::Full } else { Kind::Incremental },
                    bases: bases
                        .into_iter()
                        .map(|name| BaseRef {
                            name,
                            meta_sha256: "ab".repeat(32),
                        })
                        .collect(),
                    platforms,
                    files,
                    images,
                    blobs,
                    failed: failed
                        .into_iter()
                        .map(|(reference, reason)| Failure { reference, reason })
                        .collect(),
                    selections: vec![],
                })
            },
        )
}

/// A tar of `blobs/sha256/<hex>` entries as ferry lays it out, with the layout.
fn tar_of(contents: &[Vec<u8>]) -> (Vec<u8>, layout::FileLayout) {
    let sized: Vec<(Digest, u64)> = contents
        .iter()
        .map(|c| (Digest::of(c), c.len() as u64))
        .collect();
    let plan = layout::plan(&sized, 1).unwrap().remove(0);
    let mut tar = vec![0u8; plan.size as usize];
    for e in &plan.entries {
        let h = layout::header(&e.digest, e.size, 0).unwrap();
        let at = e.header_offset as usize;
        tar[at..at + 512].copy_from_slice(&h);
        let bytes = contents.iter().find(|c| Digest::of(c) == e.digest).unwrap();
        tar[at + 512..at + 512 + bytes.len()].copy_from_slice(bytes);
    }
    (tar, plan)
}

fn scan(limit: usize) -> Scan<'static> {
    Scan {
        file: "p.tar",
        transmit: false,
        limit,
    }
}

// ---------------------------------------------------------------------------
// Meta parsers

proptest! {
    #[test]
    fn meta_round_trips_through_its_yaml(m in meta()) {
        let mut expected = m.clone();
        expected.sanitize_text();
        let yaml = m.to_yaml().unwrap();
        let back = Meta::parse(yaml.as_bytes(), "p");
        prop_assert_eq!(back.as_ref().ok(), Some(&expected), "{}\n{:?}", yaml, back);
    }

    #[test]
    fn meta_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Meta::parse(&bytes, "p");
    }

    #[test]
    fn meta_parser_never_panics_on_an_edited_meta(
        m in meta(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..4u8, any::<char>()), 1..8),
    ) {
        let mut text: Vec<char> = m.to_yaml().unwrap().chars().collect();
        for (at, how, c) in edits {
            if text.is_empty() {
                break;
            }
            let i = at.index(text.len());
            match how {
                0 => { text.remove(i); }
                1 => text.insert(i, c),
                2 => text[i] = c,
                _ => text.insert(i, '\n'),
            }
        }
        let text: String = text.into_iter().collect();
        if let Ok(parsed) = Meta::parse(text.as_bytes(), "p") {
            // Whatever is accepted is clean and its names are safe.
            prop_assert!(parsed.check_names("p").is_ok());
            let yaml = parsed.to_yaml().unwrap();
            prop_assert!(!yaml.contains('\u{1b}'), "escape left in {}", yaml);
        }
    }

    #[test]
    fn transmit_meta_parser_never_panics(
        files in prop::collection::vec((".{0,12}", any::<u64>()), 0..3),
        blobs in prop::collection::vec(("[0-9a-f]{62,66}", prop::collection::vec(".{0,40}", 0..3)), 0..3),
        manifests in prop::collection::vec((".{0,30}", ".{0,200}"), 0..3),
        compressor in prop::option::of(".{0,8}"),
    ) {
        let q = |s: &str| format!("{s:?}");
        let mut text = String::from("datafiles:\n");
        for (n, s) in &files {
            text.push_str(&format!("  {}: {s}\n", q(n)));
        }
        if let Some(c) = compressor {
            text.push_str(&format!("compressor: {}\n", q(&c)));
        }
        text.push_str("blobs:\n");
        for (hex, refs) in &blobs {
            text.push_str(&format!("  {}:\n", q(hex)));
            for r in refs {
                text.push_str(&format!("  - {}\n", q(r)));
            }
        }
        text.push_str("manifests:\n");
        for (r, json) in &manifests {
            text.push_str(&format!("  {}: {}\n", q(r), q(json)));
        }
        prop_assert!(ferry::bundle::transmit::looks_like(&text));
        if let Ok(c) = ferry::bundle::transmit::convert(&text, "/x/img_full_1_meta.yaml") {
            prop_assert!(c.meta.check_names("p").is_ok());
        }
    }

    #[test]
    fn transmit_meta_parser_never_panics_on_text(text in ".{0,600}") {
        let _ = ferry::bundle::transmit::convert(&text, "/x/m_meta.yaml");
        let _ = ferry::bundle::transmit::looks_like(&text);
    }
}

// ---------------------------------------------------------------------------
// Tar scanner and zstd frames

proptest! {
    #[test]
    fn tar_scan_finds_what_the_layout_placed(
        contents in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1500), 1..6),
    ) {
        let mut contents = contents;
        contents.sort();
        contents.dedup();
        let (tar, plan) = tar_of(&contents);
        let mut want: Vec<(Digest, u64, u64)> = plan
            .entries
            .iter()
            .map(|e| (e.digest.clone(), e.data_offset(), e.size))
            .collect();
        want.sort();
        for found in [
            scan(contents.len()).headers_in(&mut Cursor::new(&tar), tar.len() as u64).unwrap(),
            scan(contents.len()).tar(&mut Cursor::new(&tar), true).unwrap(),
        ] {
            let mut got: Vec<(Digest, u64, u64)> =
                found.into_iter().map(|e| (e.digest, e.data_offset, e.size)).collect();
            got.sort();
            prop_assert_eq!(&got, &want);
        }
        // One fewer allowed entry than there are: refused, not truncated.
        prop_assert!(scan(contents.len() - 1)
            .headers_in(&mut Cursor::new(&tar), tar.len() as u64)
            .is_err());
    }

    #[test]
    fn tar_scan_never_panics_on_damage(
        contents in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..700), 1..4),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut tar, _) = tar_of(&contents);
        for (at, byte) in damage {
            let i = at.index(tar.len());
            tar[i] = byte;
        }
        let len = tar.len() as u64;
        let _ = scan(8).headers_in(&mut Cursor::new(&tar), len);
        let _ = scan(8).tar(&mut Cursor::new(&tar), true);
        tar.truncate(cut.index(tar.len() + 1));
        let len = tar.len() as u64;
        let _ = scan(8).headers_in(&mut Cursor::new(&tar), len);
        let _ = scan(8).tar(&mut Cursor::new(&tar), false);
    }

    #[test]
    fn tar_scan_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        let _ = scan(4).headers_in(&mut Cursor::new(&bytes), bytes.len() as u64);
        let _ = scan(4).tar(&mut Cursor::new(&bytes), true);
    }

    #[test]
    fn a_header_with_any_size_field_is_scanned_without_panic(size in any::<u64>(), len in 512u64..8192) {
        let d = Digest::of(b"p");
        let mut h = layout::header(&d, 0, 0).unwrap();
        h[124..136].fill(0);
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut tar = h.to_vec();
        tar.resize(len as usize, 0);
        let r = scan(4).headers_in(&mut Cursor::new(&tar), len);
        // Accepted only when the entry really fits in the file.
        if let Ok(entries) = r {
            for e in entries {
                prop_assert!(e.data_offset.checked_add(e.size).is_some_and(|end| end <= len));
            }
        }
        let _ = scan(4).tar(&mut Cursor::new(&tar), true);
    }

    #[test]
    fn zstd_frame_walk_matches_the_encoder(
        parts in prop::collection::vec(prop::collection::vec(0..4u8, 0..5000), 1..4),
    ) {
        let mut file = Vec::new();
        let mut starts = Vec::new();
        for p in &parts {
            starts.push(file.len() as u64);
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.include_contentsize(true).unwrap();
            e.set_pledged_src_size(Some(p.len() as u64)).unwrap();
            std::io::Write::write_all(&mut e, p).unwrap();
            file.extend(e.finish().unwrap());
        }
        let len = file.len() as u64;
        let mut pos = 0;
        for (i, p) in parts.iter().enumerate() {
            prop_assert_eq!(pos, starts[i]);
            let f = compress::frame_at(&file[..], pos, len).unwrap();
            prop_assert_eq!(f.content_size, Some(p.len() as u64));
            pos += f.len;
        }
        prop_assert_eq!(pos, len);
    }

    #[test]
    fn zstd_frame_walk_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), at in any::<u64>()) {
        let len = bytes.len() as u64;
        let _ = compress::frame_at(&bytes[..], 0, len);
        let _ = compress::frame_at(&bytes[..], at, len);
        let _ = compress::frame_at(&bytes[..], at % (len + 1), len);
        let mut framed = vec![0x28, 0xb5, 0x2f, 0xfd];
        framed.extend(&bytes);
        if let Ok(f) = compress::frame_at(&framed[..], 0, framed.len() as u64) {
            prop_assert!(f.len <= framed.len() as u64);
        }
    }
}

// ---------------------------------------------------------------------------
// Manifests, references, ranges, text

proptest! {
    #[test]
    fn manifest_parser_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        content_type in prop::option::of(".{0,60}"),
    ) {
        let _ = RawManifest::new(bytes, content_type.as_deref());
    }

    #[test]
    fn manifests_keep_their_exact_bytes(
        config in digest(),
        layers in prop::collection::vec((digest(), any::<u64>()), 0..5),
        spaces in "[ \n]{0,3}",
        oci in any::<bool>(),
    ) {
        let (mt, cmt) = if oci {
            (ferry::manifest::OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
        } else {
            (ferry::manifest::DOCKER_MANIFEST, "application/vnd.docker.container.image.v1+json")
        };
        let layers_json: Vec<String> = layers
            .iter()
            .map(|(d, s)| format!(r#"{{"mediaType":"x/y",{spaces}"digest":"{d}","size":{s}}}"#))
            .collect();
        let json = format!(
            r#"{{"schemaVersion":2,{spaces}"mediaType":"{mt}","config":{{"mediaType":"{cmt}","digest":"{config}","size":7}},"layers":[{}]}}"#,
            layers_json.join(",")
        );
        let (raw, parsed) = RawManifest::new(json.clone().into_bytes(), None).unwrap();
        prop_assert_eq!(&raw.bytes, &json.as_bytes().to_vec());
        prop_assert_eq!(raw.digest, Digest::of(json.as_bytes()));
        prop_assert_eq!(raw.media_type.as_str(), mt);
        match parsed {
            ferry::manifest::Parsed::Image { config: c, layers: l } => {
                prop_assert_eq!(c.digest, config);
                let got: Vec<(Digest, u64)> = l.into_iter().map(|d| (d.digest, d.size)).collect();
                prop_assert_eq!(got, layers);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn reference_parser_never_panics_and_is_stable(s in ".{0,80}") {
        if let Ok(r) = Reference::parse(&s) {
            prop_assert_eq!(Reference::parse(&r.to_string()), Ok(r.clone()));
            prop_assert!(ferry::reference::valid_repository(&r.repository));
        }
    }

    #[test]
    fn references_round_trip(
        host in host(),
        repo in repository(),
        tag in prop::option::of(tag()),
        digest in prop::option::of(digest()),
    ) {
        prop_assume!(host.contains('.') || host.contains(':'));
        prop_assume!(!ferry::reference::is_docker_hub(&host));
        let mut s = format!("{host}/{repo}");
        if let Some(t) = &tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        let r = Reference::parse(&s).unwrap();
        prop_assert_eq!(&r.registry, &host);
        prop_assert_eq!(&r.repository, &repo);
        let want_tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.clone(),
        };
        prop_assert_eq!(&r.tag, &want_tag);
        prop_assert_eq!(&r.digest, &digest);
        prop_assert_eq!(r.to_string(), match (&tag, &digest) {
            (None, None) => format!("{s}:latest"),
            _ => s,
        });
    }

    #[test]
    fn range_parser_stays_inside_the_blob(header in ".{0,40}", size in any::<u64>()) {
        if let Wanted::Part(start, end) = parse_range(&header, size) {
            prop_assert!(start <= end && end < size);
        }
    }

    #[test]
    fn byte_ranges_are_understood(a in any::<u64>(), b in any::<u64>(), size in any::<u64>()) {
        let (start, end) = (a.min(b), a.max(b));
        let got = parse_range(&format!("bytes={start}-{end}"), size);
        let want = if start >= size {
            Wanted::Unsatisfiable
        } else {
            Wanted::Part(start, end.min(size - 1))
        };
        prop_assert_eq!(got, want);
        let suffix = parse_range(&format!("bytes=-{a}"), size);
        if a == 0 || size == 0 {
            prop_assert_eq!(suffix, Wanted::Unsatisfiable);
        } else {
            prop_assert_eq!(suffix, Wanted::Part(size.saturating_sub(a), size - 1));
        }
    }

    #[test]
    fn sanitized_text_is_clean_and_stable(s in any::<String>()) {
        let clean = ferry::text::sanitize(&s).into_owned();
        prop_assert!(!clean.chars().any(|c| c.is_control()), "{:?}", clean);
        prop_assert_eq!(ferry::text::sanitize(&clean).into_owned(), clean.clone());
        if !s.chars().any(|c| c.is_control() || ('\u{200e}'..='\u{2069}').contains(&c)) {
            prop_assert_eq!(clean, s);
        }
    }
}
