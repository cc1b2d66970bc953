//! The import check of `cargo xtask lint`: no module may import from a module that, through
//! its own imports, imports from it.
//!
//! A module is a file. Each `use` path is an edge from the file it is in to the deepest module
//! file the path names: `use crate::a::b::C` leads to `a/b.rs` if there is one, else to `a.rs`
//! (or `a/mod.rs`). `crate::`, `self::`, `super::`, paths relative to the current module and
//! `{…}` groups are resolved, also inside inline modules (`mod tests { use super::*; }`);
//! paths into other crates are not edges, and neither are `mod x;` declarations, which only
//! say which files make up the crate. Each crate root (`lib.rs`, `main.rs`, `bin/*.rs`) and
//! the files it declares is one graph. `#[path]` attributes are not followed.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

/// A module's path inside its crate (`["bench", "lab"]`; empty for the crate root).
type Module = Vec<String>;

/// Every import cycle in the crates under `src`, one line each: the crate root, then the
/// modules in import order (`lib.rs: bench::lab -> bench::ports -> bench::lab`).
pub fn cycles_in(src: &Path) -> Result<Vec<String>> {
    let files = rust_files(src, src)?;
    let roots = files.keys().filter(|path| {
        let in_bin = path.parent() == Some(Path::new("bin"));
        *path == Path::new("lib.rs") || *path == Path::new("main.rs") || in_bin
    });
    let mut lines = Vec::new();
    for root in roots {
        for cycle in crate_cycles(&files, root) {
            lines.push(format!("{}: {}", root.display(), cycle.join(" -> ")));
        }
    }
    Ok(lines)
}

/// The `.rs` files under `dir`, by path relative to `src`.
fn rust_files(src: &Path, dir: &Path) -> Result<BTreeMap<PathBuf, String>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files.append(&mut rust_files(src, &path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let relative = path.strip_prefix(src).expect("under src").to_path_buf();
            files.insert(relative, source);
        }
    }
    Ok(files)
}

/// The import cycles of the crate whose root is `root` (a key of `files`), each as module
/// names from its first module back to it: one shortest cycle through each import that lies
/// on a cycle, so every import that could break one is named.
fn crate_cycles(files: &BTreeMap<PathBuf, String>, root: &Path) -> Vec<Vec<String>> {
    let graph = imports(&modules(files, root));
    let mut cycles = BTreeSet::new();
    for (from, targets) in &graph {
        for to in targets {
            if let Some(back) = shortest_path(&graph, to, from) {
                let mut cycle: Vec<&Module> = std::iter::once(from).chain(back).collect();
                cycle.pop(); // `from` again
                // The same cycle found from another of its imports starts elsewhere.
                let first = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                cycle.rotate_left(first);
                cycle.push(cycle[0]);
                cycles.insert(cycle.into_iter().map(name).collect::<Vec<_>>());
            }
        }
    }
    cycles.into_iter().collect()
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

/// The modules on a shortest path of imports from `from` to `to`, both included.
fn shortest_path<'a>(
    graph: &'a BTreeMap<Module, BTreeSet<Module>>,
    from: &'a Module,
    to: &Module,
) -> Option<Vec<&'a Module>> {
    let mut previous: BTreeMap<&Module, &Module> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(module) = queue.pop_front() {
        if module == to {
            let mut path = vec![module];
            while let Some(&before) = previous.get(path[path.len() - 1]) {
                path.push(before);
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(module).into_iter().flatten() {
            if next != from && !previous.contains_key(next) {
                previous.insert(next, module);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The files of a crate, found by following its `mod x;` declarations from `root`, with
/// what each declares and imports.
fn modules(files: &BTreeMap<PathBuf, String>, root: &Path) -> BTreeMap<Module, Items> {
    let mut modules = BTreeMap::new();
    let mut queue = vec![(Module::new(), root.to_path_buf())];
    while let Some((module, file)) = queue.pop() {
        // A declared module without its file is the compiler's to report.
        let Some(source) = files.get(&file) else {
            continue;
        };
        let items = items(&tokens(source));
        // Child modules' files are beside a crate root or a mod.rs, else in a directory named
        // after the file.
        let dir = if module.is_empty() || file.ends_with("mod.rs") {
            file.parent().unwrap_or(Path::new("")).to_path_buf()
        } else {
            file.with_extension("")
        };
        for (inline, child) in &items.mods {
            let base: PathBuf = dir.join(inline.iter().collect::<PathBuf>());
            let candidates = [
                base.join(format!("{child}.rs")),
                base.join(child).join("mod.rs"),
            ];
            if let Some(path) = candidates.into_iter().find(|p| files.contains_key(p)) {
                let path_in_crate = [&module[..], inline, std::slice::from_ref(child)].concat();
                queue.push((path_in_crate, path));
            }
        }
        modules.insert(module, items);
    }
    modules
}

/// Which modules each module imports from (itself left out).
fn imports(modules: &BTreeMap<Module, Items>) -> BTreeMap<Module, BTreeSet<Module>> {
    let known: BTreeSet<&Module> = modules.keys().collect();
    let mut graph = BTreeMap::new();
    for (module, items) in modules {
        let targets: BTreeSet<Module> = items
            .uses
            .iter()
            .filter_map(|(inline, path)| resolve(&[&module[..], inline].concat(), path, &known))
            .filter(|target| target != module)
            .collect();
        graph.insert(module.clone(), targets);
    }
    graph
}

/// The module file that `path`, imported in module `at` (a file's module, then the inline
/// modules around the `use`), leads to; None for another crate's path.
fn resolve(at: &[String], path: &[String], known: &BTreeSet<&Module>) -> Option<Module> {
    let supers = path.iter().take_while(|s| *s == "super").count();
    let (mut full, rest) = match path.first()?.as_str() {
        "::" => return None,
        "crate" => (Vec::new(), &path[1..]),
        "self" => (at.to_vec(), &path[1..]),
        "super" => (
            at[..at.len().checked_sub(supers)?].to_vec(),
            &path[supers..],
        ),
        // Relative to the current module; another crate's path stops at the module itself.
        _ => (at.to_vec(), path),
    };
    // `a::{self, b}` imports `a` itself.
    full.extend(rest.iter().filter(|s| *s != "self").cloned());
    (0..=full.len())
        .rev()
        .map(|len| full[..len].to_vec())
        .find(|prefix| known.contains(prefix))
}

/// What a file declares and imports, each with the inline modules it sits in.
#[derive(Debug, Default, PartialEq)]
struct Items {
    /// `mod x;`
    mods: Vec<(Vec<String>, String)>,
    /// `use` paths, groups expanded (`a::{b, c::D}` is `a::b` and `a::c::D`); `*` and aliases
    /// left out; a leading `::` kept as a segment of its own.
    uses: Vec<(Vec<String>, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// Identifiers, keywords and numbers; raw identifiers keep their `r#`.
    Word(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// Tokens of Rust source, comments and literals left out.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = after_string(&chars, i + 1);
        } else if c == '\'' {
            i = after_quote(&chars, i);
        } else if is_word(c) {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = after_string(&chars, i + 1);
            } else if word == "b" && at(i) == '\'' {
                i = after_quote(&chars, i);
            } else if raw && (at(i) == '"' || (at(i) == '#' && matches!(at(i + 1), '"' | '#'))) {
                let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
                i += hashes + 1;
                let end: Vec<char> = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                while i < chars.len() && !chars[i..].starts_with(&end) {
                    i += 1;
                }
                i += end.len();
            } else if word == "r" && at(i) == '#' && is_word(at(i + 1)) {
                let start = i + 1;
                i = start;
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
                let ident: String = chars[start..i].iter().collect();
                tokens.push(Token::Word(format!("r#{ident}")));
            } else {
                tokens.push(Token::Word(word));
            }
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(Token::PathSep);
            i += 2;
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// Where a string literal whose opening quote is before `i` ends.
fn after_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// Where the char literal, lifetime or label starting with the quote at `i` ends.
fn after_quote(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        // '\n', '\'', '\u{1F600}'
        (Some('\\'), _) => {
            let mut j = i + 3;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            j + 1
        }
        // 'x'
        (Some(_), Some('\'')) => i + 3,
        // 'a, 'static, 'outer: the quote alone; the name is a word that matters to no one.
        _ => i + 1,
    }
}

/// The `mod x;` declarations and `use` paths among `tokens`.
fn items(tokens: &[Token]) -> Items {
    let mut items = Items::default();
    // The inline modules around the current token, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    while i < tokens.len() {
        let around = || {
            inline
                .iter()
                .map(|(name, _)| name.clone())
                .collect::<Vec<_>>()
        };
        match &tokens[i] {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Word(w) if w == "mod" => {
                if let Some(name) = word(i + 1) {
                    match tokens.get(i + 2) {
                        Some(Token::Punct(';')) => items.mods.push((around(), name.to_string())),
                        Some(Token::Punct('{')) => {
                            depth += 1;
                            inline.push((name.to_string(), depth));
                            i += 2;
                        }
                        _ => {}
                    }
                }
            }
            // Not `use<'a>` (precise capturing) nor `$crate` paths in macros.
            Token::Word(w)
                if w == "use"
                    && matches!(
                        tokens.get(i + 1),
                        Some(Token::Word(_) | Token::PathSep | Token::Punct('{'))
                    ) =>
            {
                i += 1;
                let mut paths = Vec::new();
                use_tree(tokens, &mut i, Vec::new(), &mut paths);
                let around = around();
                items
                    .uses
                    .extend(paths.into_iter().map(|path| (around.clone(), path)));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    items
}

/// Reads one use tree from `tokens[*i]` on, after the segments in `path`; leaves `*i` at the
/// token that ends it (`,`, `}` or `;`).
fn use_tree(tokens: &[Token], i: &mut usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        match tokens.get(*i) {
            Some(Token::PathSep) => {
                if path.is_empty() {
                    path.push("::".to_string());
                }
                *i += 1;
            }
            // `as NAME`: the path is what counts.
            Some(Token::Word(w)) if w == "as" => *i += 2,
            Some(Token::Word(w)) => {
                path.push(w.clone());
                *i += 1;
            }
            Some(Token::Punct('*')) => *i += 1,
            Some(Token::Punct('{')) => {
                *i += 1;
                loop {
                    match tokens.get(*i) {
                        Some(Token::Punct('}')) => {
                            *i += 1;
                            break;
                        }
                        Some(Token::Punct(',')) => *i += 1,
                        Some(Token::Punct(';')) | None => return,
                        Some(_) => use_tree(tokens, i, path.clone(), out),
                    }
                }
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(source: &str) -> Vec<String> {
        tokens(source)
            .into_iter()
            .map(|t| match t {
                Token::Word(w) => w,
                Token::PathSep => "::".to_string(),
                Token::Punct(c) => c.to_string(),
            })
            .collect()
    }

    fn uses(source: &str) -> Vec<String> {
        items(&tokens(source))
            .uses
            .into_iter()
            .map(|(inline, path)| {
                let path = path.join("::");
                if inline.is_empty() {
                    path
                } else {
                    format!("[{}] {path}", inline.join("::"))
                }
            })
            .collect()
    }

    fn files(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
        list.iter()
            .map(|(path, source)| (PathBuf::from(path), source.to_string()))
            .collect()
    }

    fn cycles(list: &[(&str, &str)]) -> Vec<String> {
        crate_cycles(&files(list), Path::new("lib.rs"))
            .into_iter()
            .map(|cycle| cycle.join(" -> "))
            .collect()
    }

    #[test]
    fn comments_strings_chars_and_lifetimes_are_no_tokens() {
        let source = r##"
            // use HIDDEN;
            /* use HIDDEN; /* nested */ use HIDDEN; */
            let s1 = "use HIDDEN; \" use HIDDEN;";
            let s2 = r#"use HIDDEN; "HIDDEN"# ;
            let s3 = b"HIDDEN"; let s4 = c"HIDDEN"; let s5 = br"HIDDEN";
            let c1 = '"'; let c2 = '\''; let c3 = '\u{1F600}'; let c4 = b'"';
            fn f<'a>(x: &'a str) -> &'static str { 'outer: loop {} }
            r#use::x
        "##;
        let w = words(source);
        assert!(!w.iter().any(|w| w.contains("HIDDEN")), "{w:?}");
        assert_eq!(w.iter().filter(|w| *w == "let").count(), 9, "{w:?}");
        assert!(w.contains(&"static".to_string()) && w.contains(&"outer".to_string()));
        assert!(w.contains(&"r#use".to_string()) && !w.contains(&"use".to_string()));
    }

    #[test]
    fn use_trees_expand_to_paths() {
        let source = "
            use std::fmt;
            pub(crate) use crate::a::{self, b::{C, D as E}, f::*};
            use super::super::g;
            use ::ext::h;
            use {i, j::k};
            fn f() -> impl Sized + use<> { use self::l::M; }
            macro_rules! m { () => { use $crate::n; } }
        ";
        assert_eq!(
            uses(source),
            [
                "std::fmt",
                "crate::a::self",
                "crate::a::b::C",
                "crate::a::b::D",
                "crate::a::f",
                "super::super::g",
                "::::ext::h",
                "i",
                "j::k",
                "self::l::M",
            ]
        );
    }

    #[test]
    fn inline_modules_are_tracked() {
        let source = "
            mod a;
            mod tests { use super::*; mod inner; fn f() { if x { use y::z; } } }
            use after::x;
        ";
        assert_eq!(uses(source), ["[tests] super", "[tests] y::z", "after::x"]);
        let items = items(&tokens(source));
        assert_eq!(
            items.mods,
            [
                (vec![], "a".to_string()),
                (vec!["tests".to_string()], "inner".to_string())
            ]
        );
    }

    #[test]
    fn paths_lead_to_the_deepest_module_file_they_name() {
        let module = |m: &str| -> Module {
            m.split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        let modules = ["", "a", "a::b", "c"].map(module);
        let known: BTreeSet<&Module> = modules.iter().collect();
        let at = |at: &str, path: &str| {
            resolve(&module(at), &module(path), &known).map(|m| m.join("::"))
        };
        assert_eq!(at("c", "crate::a::b::Item").as_deref(), Some("a::b"));
        assert_eq!(at("c", "crate::a::Item").as_deref(), Some("a"));
        assert_eq!(at("c", "crate::Item").as_deref(), Some(""));
        assert_eq!(at("a::b", "super::Item").as_deref(), Some("a"));
        assert_eq!(at("a::b", "super::super::c").as_deref(), Some("c"));
        assert_eq!(
            at("a::b::tests", "super::super::Item").as_deref(),
            Some("a")
        );
        assert_eq!(at("a", "self::b::f").as_deref(), Some("a::b"));
        assert_eq!(at("a", "b::f").as_deref(), Some("a::b"));
        assert_eq!(at("a", "crate::a::{self}").as_deref(), Some("a"));
        assert_eq!(at("c", "std::fmt").as_deref(), Some("c"));
        assert_eq!(at("", "a::b").as_deref(), Some("a::b"));
        let external = ["::", "a", "b"].map(String::from);
        assert_eq!(resolve(&module("c"), &external, &known), None);
        assert_eq!(at("", "super::x"), None);
    }

    #[test]
    fn module_files_come_from_mod_declarations() {
        let tree = files(&[
            ("lib.rs", "mod a; mod b; mod gone;"),
            ("a.rs", "mod inner;"),
            ("a/inner.rs", ""),
            ("b/mod.rs", "mod c; #[cfg(test)] mod tests { mod d; }"),
            ("b/c.rs", ""),
            ("b/tests/d.rs", ""),
            ("stray.rs", ""),
        ]);
        let names: Vec<String> = modules(&tree, Path::new("lib.rs"))
            .keys()
            .map(name)
            .collect();
        assert_eq!(
            names,
            ["crate", "a", "a::inner", "b", "b::c", "b::tests::d"]
        );
    }

    #[test]
    fn every_import_on_a_cycle_shows_in_one() {
        assert_eq!(
            cycles(&[
                ("lib.rs", "mod a; mod b; mod c; mod d;"),
                ("a.rs", "use crate::b::X;"),
                ("b.rs", "use super::{c::Y, a};"),
                ("c.rs", "use crate::a::Z; use crate::d::W;"),
                ("d.rs", ""),
            ]),
            ["a -> b -> a", "a -> b -> c -> a"]
        );
    }

    #[test]
    fn self_imports_parents_and_other_crates_make_no_cycle() {
        assert!(
            cycles(&[
                ("lib.rs", "mod a; mod b; use a::A;"),
                (
                    "a.rs",
                    "use self::x::Y; use std::fmt; mod tests { use super::*; }"
                ),
                ("b.rs", "use crate::a::A; use ::b::x;"),
            ])
            .is_empty()
        );
        assert_eq!(
            cycles(&[
                ("lib.rs", "mod a; pub use a::A; pub struct R;"),
                ("a.rs", "use crate::R;")
            ]),
            ["crate -> a -> crate"]
        );
    }

    #[test]
    fn crates_are_checked_one_by_one() {
        let dir = std::env::temp_dir().join(format!("xtask-imports-{}", std::process::id()));
        let write = |path: &str, source: &str| {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, source).unwrap();
        };
        write("lib.rs", "mod a; mod b;");
        write("a.rs", "use crate::b::B;");
        write("b.rs", "use crate::a::A;");
        write("main.rs", "mod x;");
        write("x.rs", "use crate::y;");
        write("bin/tool.rs", "use xnet::a::A; fn main() {}");
        let found = cycles_in(&dir);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found.unwrap(), ["lib.rs: a -> b -> a"]);
    }
}
