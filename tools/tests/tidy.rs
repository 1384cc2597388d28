//! Tidy rules over the source tree, checked on every test run. Each can fail, and each says
//! what to change:
//!
//! - **no blocking file I/O on a shard**: `std::fs` in the shard crates (`engine/src`,
//!   `net/src`, `replication/src`) only inside a `blocking(...)` call (run on the executor's
//!   blocking thread) or in the functions listed in [`FS_ALLOWED`], which never run on a shard's
//!   reactor;
//! - **Kafka error codes only in `net/src/errors.rs`**: no numeric `with_error_code(7)`,
//!   `code: 69` or `const X: i16 = 3` elsewhere in `net/src` and `tools/src`;
//! - **no mutable statics in `net/` and `replication/`**: no `static mut`, `thread_local!`, or
//!   `static` atomics, cells, locks;
//! - **function length ratchets down**: no function longer than [`FN_LINES_MAX`] lines, except
//!   those in `tidy-ratchet.txt` (path, name, today's length), which may not grow, and whose
//!   entry must be lowered (or removed) once the function shrinks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FN_LINES_MAX: usize = 100;
/// How far below its recorded length a ratcheted function may fall before the entry must be
/// lowered.
const RATCHET_SLACK: usize = 5;

/// `(file, function)`: where `std::fs` may be called outside `blocking(...)`, and why.
const FS_ALLOWED: &[(&str, &str, &str)] = &[
    ("engine/src/io.rs", "write_atomically", "called only through blocking(...)"),
    ("replication/src/node.rs", "next_generation", "runs on the starting thread, before any shard"),
    ("net/src/topics.rs", "load", "runs on the starting thread, before any shard"),
    ("net/src/handlers/init_producer_id.rs", "load", "runs on the starting thread, before any shard (Broker::new)"),
    ("net/src/topics.rs", "persist", "called only through blocking(...) (handlers::admin::persist)"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &str) -> Vec<(String, String)> {
    fn walk(base: &Path, rel: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(base.join(rel)) else { return };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = rel.join(e.file_name());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk(base, &rel, out);
            } else if rel.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(base.join(&rel)).expect("readable source");
                out.push((rel.to_string_lossy().replace('\\', "/"), text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), Path::new(dir), &mut out);
    assert!(!out.is_empty(), "no sources under {dir}");
    out
}

/// The source with comments and the insides of string and char literals blanked (same line
/// structure), and everything from the first top-level `#[cfg(test)]` on dropped.
fn code_only(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block_comment = 0usize;
    for line in text.lines() {
        if in_block_comment == 0 && line.starts_with("#[cfg(test)]") {
            break;
        }
        let chars: Vec<char> = line.chars().collect();
        let mut s = String::with_capacity(line.len());
        let mut i = 0;
        let mut in_str = false;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if in_block_comment > 0 {
                if c == '*' && next == Some('/') {
                    in_block_comment -= 1;
                    i += 1;
                } else if c == '/' && next == Some('*') {
                    in_block_comment += 1;
                    i += 1;
                }
                s.push(' ');
            } else if in_str {
                if c == '\\' {
                    s.push(' ');
                    i += 1;
                } else if c == '"' {
                    in_str = false;
                    s.push('"');
                    i += 1;
                    continue;
                }
                s.push(' ');
            } else if c == '/' && next == Some('/') {
                break;
            } else if c == '/' && next == Some('*') {
                in_block_comment = 1;
                i += 1;
                s.push(' ');
            } else if c == '"' {
                in_str = true;
                s.push('"');
            } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
                // A char literal such as '{'.
                s.push_str("' '");
                i += 3;
                continue;
            } else if c == '\'' && next == Some('\\') {
                // An escaped char literal such as '\''.
                let end = chars[i + 2..].iter().position(|&x| x == '\'').map(|p| i + 2 + p).unwrap_or(i + 1);
                s.push_str("' '");
                i = end + 1;
                continue;
            } else {
                s.push(c);
            }
            i += 1;
        }
        out.push(s);
    }
    out
}

fn fn_name(line: &str) -> Option<String> {
    let t = line.trim_start();
    let mut words = t.split_whitespace().peekable();
    while let Some(w) = words.peek() {
        if w.starts_with("pub") || matches!(*w, "async" | "const" | "unsafe" | "extern" | "\"C\"" | "default") {
            words.next();
        } else {
            break;
        }
    }
    if words.next()? != "fn" {
        return None;
    }
    let name: String = words.next()?.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty()).then_some(name)
}

/// Every function with a body: `(name, first line index, line count)`.
fn functions(code: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    for (start, line) in code.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let mut depth = 0i64;
        let mut opened = false;
        let mut end = None;
        'scan: for (j, l) in code.iter().enumerate().skip(start) {
            for c in l.chars() {
                match c {
                    ';' if !opened && depth == 0 => break 'scan,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            end = Some(j);
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(end) = end {
            out.push((name, start, end - start + 1));
        }
    }
    out
}

#[test]
fn no_blocking_file_io_on_shard_threads() {
    let mut bad = Vec::new();
    for dir in ["engine/src", "net/src", "replication/src"] {
        for (path, text) in rust_files(dir) {
            let code = code_only(&text);
            let fns = functions(&code);
            // Lines inside a `blocking(` call's parentheses.
            let mut inside = vec![false; code.len()];
            for (i, l) in code.iter().enumerate() {
                let Some(at) = l.find("blocking(") else { continue };
                let mut depth = 0i64;
                'call: for (j, m) in code.iter().enumerate().skip(i) {
                    let from = if j == i { at + "blocking".len() } else { 0 };
                    inside[j] = true;
                    for c in m[from..].chars() {
                        match c {
                            '(' => depth += 1,
                            ')' => {
                                depth -= 1;
                                if depth == 0 {
                                    break 'call;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            for (i, l) in code.iter().enumerate() {
                if !l.contains("std::fs") || inside[i] {
                    continue;
                }
                let in_allowed = fns.iter().any(|(name, start, len)| {
                    (*start..start + len).contains(&i) && FS_ALLOWED.iter().any(|(p, f, _)| *p == path && f == name)
                });
                if !in_allowed {
                    bad.push(format!("{path}:{}: {}", i + 1, l.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "std::fs on a shard thread (wrap it in engine::io::dma::blocking, or list the function in FS_ALLOWED with why it never runs on a shard):\n{}",
        bad.join("\n")
    );
}

#[test]
fn kafka_error_codes_are_named_in_one_module() {
    let mut bad = Vec::new();
    for dir in ["net/src", "tools/src"] {
        for (path, text) in rust_files(dir) {
            if path == "net/src/errors.rs" {
                continue;
            }
            for (i, l) in code_only(&text).iter().enumerate() {
                let compact: String = l.chars().filter(|c| !c.is_whitespace()).collect();
                let numeric_after = |pat: &str| {
                    compact.match_indices(pat).any(|(at, _)| {
                        let rest = &compact[at + pat.len()..];
                        let rest = rest.strip_prefix('-').unwrap_or(rest);
                        rest.starts_with(|c: char| c.is_ascii_digit())
                    })
                };
                let const_code = compact.contains(":i16=") && compact.starts_with("pubconst")
                    || compact.starts_with("const") && compact.contains(":i16=");
                if numeric_after("with_error_code(")
                    || numeric_after("Kafka{code:")
                    || numeric_after("error_code=")
                    || const_code
                {
                    bad.push(format!("{path}:{}: {}", i + 1, l.trim()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "raw Kafka error codes outside net/src/errors.rs (name them in errors::code):\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_mutable_statics_in_net_or_replication() {
    let mut bad = Vec::new();
    for dir in ["net/src", "replication/src"] {
        for (path, text) in rust_files(dir) {
            for (i, l) in code_only(&text).iter().enumerate() {
                let t = l.trim_start();
                let is_static = t.starts_with("static ") || t.starts_with("pub static ") || t.contains(" static ");
                let mutable = ["Atomic", "Cell", "Mutex", "RwLock", "OnceLock", "OnceCell", "LazyLock"]
                    .iter()
                    .any(|w| t.contains(w));
                if t.contains("static mut") || t.contains("thread_local!") || (is_static && mutable) {
                    bad.push(format!("{path}:{}: {}", i + 1, l.trim()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "mutable global state (keep it in the Broker or a shard's context):\n{}", bad.join("\n"));
}

fn ratchet() -> BTreeMap<(String, String), usize> {
    let text = std::fs::read_to_string(root().join("tidy-ratchet.txt")).expect("tidy-ratchet.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut w = l.split_whitespace();
            let (path, name, n) = (w.next(), w.next(), w.next().and_then(|n| n.parse().ok()));
            match (path, name, n) {
                (Some(p), Some(f), Some(n)) => ((p.to_string(), f.to_string()), n),
                _ => panic!("tidy-ratchet.txt: expected `path function lines`, got {l:?}"),
            }
        })
        .collect()
}

#[test]
fn function_length_ratchets_down() {
    let allowed = ratchet();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for dir in ["engine/src", "net/src", "replication/src", "tools/src"] {
        for (path, text) in rust_files(dir) {
            for (name, _, len) in functions(&code_only(&text)) {
                let e = seen.entry((path.clone(), name)).or_default();
                *e = (*e).max(len);
            }
        }
    }
    let mut bad = Vec::new();
    for (key, len) in &seen {
        let limit = allowed.get(key).copied().unwrap_or(FN_LINES_MAX).max(FN_LINES_MAX);
        if *len > limit {
            bad.push(format!("{} {}: {len} lines, at most {limit}", key.0, key.1));
        }
    }
    for (key, recorded) in &allowed {
        match seen.get(key) {
            None => bad.push(format!("{} {}: in tidy-ratchet.txt but gone: remove the entry", key.0, key.1)),
            Some(len) if *len <= FN_LINES_MAX => {
                bad.push(format!("{} {}: {len} lines now: remove its tidy-ratchet.txt entry", key.0, key.1))
            }
            Some(len) if recorded.saturating_sub(*len) > RATCHET_SLACK => bad.push(format!(
                "{} {}: {len} lines now: lower its tidy-ratchet.txt entry from {recorded}",
                key.0, key.1
            )),
            _ => {}
        }
    }
    assert!(bad.is_empty(), "function length (split long functions; never raise the ratchet):\n{}", bad.join("\n"));
}

#[test]
fn the_scanner_sees_what_it_must() {
    let src = "fn short() {\n    let s = \"}{\";\n    let c = '{';\n}\n// fn commented() {\npub async fn two(\n    a: u8,\n) -> u8 {\n    a\n}\nfn decl();\n";
    let fns = functions(&code_only(src));
    assert_eq!(fns, vec![("short".to_string(), 0, 4), ("two".to_string(), 5, 5)]);
    let code = code_only("let x = 1; // std::fs\n#[cfg(test)]\nmod tests { std::fs::read(\"x\"); }\n");
    assert_eq!(code.len(), 1);
    assert!(!code[0].contains("std::fs"));
}
