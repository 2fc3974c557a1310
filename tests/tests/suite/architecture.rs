//! The shape of the workspace, checked from its sources and `cargo
//! metadata`: modules of a crate import each other in one direction only
//! (no two import each other, directly or in a circle), and crates depend
//! on each other in the directions of DESIGN.md (the console and the field
//! agent never link the dispatcher or the engine).
//!
//! An import is a path in a module's code (outside its `#[cfg(test)]`
//! tests): `crate::a::b`, `super::x`, or a child module named from its
//! parent (`dispatch::offer`). Calling a method defined in another module's
//! `impl` block is not a path and is not seen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every crate's `src` folder, by package name.
const CRATES: [(&str, &str); 8] = [
    ("pingji-proto", "proto/src"),
    ("pingji-rules", "proto/rules/src"),
    ("pingji-client", "proto/client/src"),
    ("pingji-engine", "dispatcher/engine/src"),
    ("pingji-dispatcher", "dispatcher/src"),
    ("pingji-field-agent", "field-agent/src"),
    ("pingji-console", "console/src"),
    ("pingji-scenarios", "scenarios/src"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The module path of a source file under `src` (`engine::dispatch` for
/// `engine/dispatch.rs` or `engine/dispatch/mod.rs`); `None` for binaries.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    if parts.first().is_some_and(|first| first == "bin") {
        return None;
    }
    if parts.last().is_some_and(|last| last == "mod" || last == "lib" || last == "main") {
        parts.pop();
    }
    Some(if parts.is_empty() { "crate".to_string() } else { parts.join("::") })
}

fn rust_files(folder: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// The code of a module without its tests, comments and string contents.
fn code_of(text: &str) -> String {
    let without_tests = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut code = String::new();
    for line in without_tests.lines() {
        let line = line.split("//").next().unwrap_or("");
        // Paths in strings ("crate::x" in a message) are not imports.
        let mut in_string = false;
        for character in line.chars() {
            if character == '"' {
                in_string = !in_string;
            } else if !in_string {
                code.push(character);
            }
        }
        code.push('\n');
    }
    code
}

/// The paths that follow `prefix` in `code` (`crate::` → `engine::Engine`);
/// a group (`super::{agent, command}`) gives one path per member.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let is_path = |character: char| character.is_alphanumeric() || character == '_' || character == ':';
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|character| character.is_alphanumeric() || character == '_' || character == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let members = group.split('}').next().unwrap_or("");
            for member in members.split(',') {
                let member = member.trim();
                let end = member.find(|character: char| !is_path(character)).unwrap_or(member.len());
                let path: Vec<&str> = member[..end].split("::").filter(|part| !part.is_empty() && *part != "self").collect();
                if !path.is_empty() {
                    found.push(path);
                }
            }
            continue;
        }
        let end = rest.find(|character: char| !is_path(character)).unwrap_or(rest.len());
        let path: Vec<&str> = rest[..end].split("::").filter(|part| !part.is_empty()).collect();
        if !path.is_empty() {
            found.push(path);
        }
    }
    found
}

/// Module → the modules of the same crate it imports.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut code_by_module = BTreeMap::new();
    for file in &files {
        if let Some(module) = module_of(src, file) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            code_by_module.insert(module, code_of(&text));
        }
    }
    let modules: BTreeSet<String> = code_by_module.keys().cloned().collect();
    // The longest module that a path names.
    let resolve = |parts: Vec<String>| -> Option<String> {
        (1..=parts.len()).rev().map(|length| parts[..length].join("::")).find(|candidate| modules.contains(candidate))
    };
    let mut graph = BTreeMap::new();
    for (module, code) in &code_by_module {
        let own: Vec<String> = if module == "crate" { Vec::new() } else { module.split("::").map(str::to_string).collect() };
        let parent: Vec<String> = own.iter().take(own.len().saturating_sub(1)).cloned().collect();
        let mut imports = BTreeSet::new();
        for path in paths_after(code, "crate::") {
            imports.extend(resolve(path.iter().map(|part| part.to_string()).collect()));
        }
        for path in paths_after(code, "super::") {
            let mut full = parent.clone();
            full.extend(path.iter().map(|part| part.to_string()));
            imports.extend(resolve(full).or_else(|| (!parent.is_empty()).then(|| parent.join("::"))));
        }
        // A child named from its parent: `dispatch::offer` in engine/mod.rs.
        for child in modules.iter().filter(|candidate| {
            candidate.strip_prefix(&format!("{}::", own.join("::"))).is_some_and(|rest| !rest.contains("::"))
                || (module == "crate" && !candidate.contains("::") && *candidate != "crate")
        }) {
            let name = child.rsplit("::").next().unwrap_or(child);
            if !paths_after(code, &format!("{name}::")).is_empty() {
                imports.insert(child.clone());
            }
        }
        imports.remove(module);
        imports.remove("crate");
        graph.insert(module.clone(), imports);
    }
    graph
}

/// The groups of modules that import each other in a circle (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Search<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, node: &'a str) {
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next.as_str()) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next.as_str()]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next.as_str()) {
                    let low = self.low[node].min(self.index[next.as_str()]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut group = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    group.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut search = Search {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !search.index.contains_key(node.as_str()) {
            search.visit(node);
        }
    }
    search.found
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut problems = Vec::new();
    for (package, src) in CRATES {
        let graph = module_graph(&workspace().join(src));
        assert!(!graph.is_empty(), "no modules found in {src}");
        for group in circles(&graph) {
            let edges: Vec<String> = group
                .iter()
                .flat_map(|from| graph[from].iter().filter(|to| group.contains(to)).map(move |to| format!("{from} -> {to}")))
                .collect();
            problems.push(format!("{package}: {} import each other ({})", group.join(", "), edges.join("; ")));
        }
    }
    assert!(problems.is_empty(), "modules in a circle:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
        ("d".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into();
    assert_eq!(circles(&graph), vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]);
    let code =
        code_of("use crate::areas::AreaLevel;\nlet text = \"crate::fake\"; // crate::comment\nuse super::{agent, command::X};\n");
    assert_eq!(paths_after(&code, "crate::"), vec![vec!["areas", "AreaLevel"]]);
    assert_eq!(paths_after(&code, "super::"), vec![vec!["agent"], vec!["command", "X"]]);
}

/// The packages `package` links (normal dependencies, transitively).
fn linked(metadata: &serde_json::Value, package: &str) -> BTreeSet<String> {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    let id_of = |name: &str| {
        packages.iter().find(|found| found["name"] == name).and_then(|found| found["id"].as_str()).map(str::to_string)
    };
    let nodes = metadata["resolve"]["nodes"].as_array().cloned().unwrap_or_default();
    let name_of = |id: &str| {
        packages.iter().find(|found| found["id"] == id).and_then(|found| found["name"].as_str()).unwrap_or("").to_string()
    };
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = id_of(package).into_iter().collect();
    while let Some(id) = queue.pop() {
        let Some(node) = nodes.iter().find(|node| node["id"] == id.as_str()) else { continue };
        for dependency in node["deps"].as_array().into_iter().flatten() {
            let normal = dependency["dep_kinds"].as_array().into_iter().flatten().any(|kind| kind["kind"].is_null());
            let Some(next) = dependency["pkg"].as_str() else { continue };
            if normal && seen.insert(name_of(next)) {
                queue.push(next.to_string());
            }
        }
    }
    seen
}

#[test]
fn crates_depend_in_the_designed_directions() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let server = ["pingji-dispatcher", "pingji-engine"];
    for client in ["pingji-console", "pingji-field-agent", "pingji-client"] {
        let links = linked(&metadata, client);
        for forbidden in server {
            assert!(
                !links.contains(forbidden),
                "{client} links {forbidden}: a client builds on pingji-proto and pingji-client only"
            );
        }
    }
    // geo links rand for its own random shapes; the engine's code never
    // calls it (`the_engine_has_no_clock_randomness_or_io`).
    let engine = linked(&metadata, "pingji-engine");
    for forbidden in ["tokio", "tonic", "rusqlite", "redis", "argon2", "pingji-proto", "pingji-client"] {
        assert!(
            !engine.contains(forbidden),
            "pingji-engine links {forbidden}: the domain has no I/O, clock, randomness or wire types"
        );
    }
    assert!(
        !linked(&metadata, "pingji-proto").iter().any(|name| name.starts_with("pingji-")),
        "pingji-proto depends on no other crate of ours"
    );
}

#[test]
fn the_engine_has_no_clock_randomness_or_io() {
    let mut files = Vec::new();
    rust_files(&workspace().join("dispatcher/engine/src"), &mut files);
    let forbidden = ["rand::", "SystemTime", "Instant::now", "std::fs", "std::net", "tokio", "thread::sleep", "OsRng"];
    // The engine's own test module may read sample files.
    for file in files.into_iter().filter(|file| !file.ends_with("tests.rs")) {
        let code = code_of(&std::fs::read_to_string(&file).unwrap_or_default());
        for word in forbidden {
            assert!(
                !code.contains(word),
                "{} uses {word}: time comes in as an argument, and the engine has no I/O",
                file.display()
            );
        }
    }
}
