//! Limits a document must meet before anything recursive touches it.
//!
//! async-graphql parses, checks, validates and executes documents with
//! recursive code, and its own depth and complexity limits run inside that
//! code. Two shapes of hostile document get through them: values nested a few
//! thousand deep (a stack overflow that aborts the process), and fragments
//! that spread each other twice per level (work that doubles per level before
//! any limit counts it). This guard ([`Admission`]) runs first, on every
//! path a document takes (`/graphql` by POST and GET, the WebSocket,
//! persisted queries):
//!
//! 1. [`check_nesting`] scans the text once, without recursion, and refuses
//!    any bracket nesting (`{`, `[`, `(`) deeper than the limit;
//! 2. variables are walked with an explicit stack, under the same limit;
//! 3. only then is the document parsed, and its selections are counted with
//!    every fragment spread expanded (each fragment counted once, memoised,
//!    so a fragment bomb costs microseconds to refuse), refusing spread
//!    cycles, fragment chains deeper than the limit, too many fields and too
//!    many aliases.
//!
//! Every refusal is a `BAD_USER_INPUT` request error.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, Name, Request, ServerError, ServerResult, Value};
use sha2::{Digest, Sha256};

/// The limits [`Admission`] applies.
#[derive(Clone, Copy, Debug)]
pub struct DocumentLimits {
    /// Deepest bracket nesting in the text, and deepest variable value.
    pub max_nesting: usize,
    /// Most fields selected, once fragments are expanded.
    pub max_fields: u64,
    /// Most aliases, once fragments are expanded.
    pub max_aliases: u64,
}

/// The gate every request passes before the schema runs it, on every path
/// a document takes (`/graphql` by POST and GET, the WebSocket): the
/// [`DocumentLimits`], then Apollo's automatic persisted queries, then the
/// parse, whose result is kept by the document's text.
///
/// It runs outside the schema rather than as an async-graphql extension:
/// the schema sends every resolved field through each registered
/// extension, a boxed future and two registry look-ups per field per
/// extension, even for extensions that only look at the request.
pub struct Admission {
    limits: DocumentLimits,
    /// Documents registered by hash (`extensions.persistedQuery`).
    persisted: Mutex<HashMap<String, ExecutableDocument>>,
    /// Documents already parsed and checked, by their text: clients send
    /// the same few documents over and over.
    parsed: Mutex<HashMap<String, ExecutableDocument>>,
}

/// Documents each of [`Admission`]'s caches holds before it starts afresh.
const CACHED_DOCUMENTS: usize = 1024;

/// `extensions.persistedQuery`, as Apollo clients send it.
#[derive(serde::Deserialize)]
struct PersistedQuery {
    version: i32,
    #[serde(rename = "sha256Hash")]
    sha256_hash: String,
}

fn remember(
    cache: &Mutex<HashMap<String, ExecutableDocument>>,
    key: String,
    doc: &ExecutableDocument,
) {
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= CACHED_DOCUMENTS {
        cache.clear();
    }
    cache.insert(key, doc.clone());
}

fn recall(
    cache: &Mutex<HashMap<String, ExecutableDocument>>,
    key: &str,
) -> Option<ExecutableDocument> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key)
        .cloned()
}

impl Admission {
    pub fn new(limits: DocumentLimits) -> Self {
        Self {
            limits,
            persisted: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `request` and gives it back with its document parsed.
    ///
    /// # Errors
    /// The request error to answer with: a refused document or variables
    /// (`BAD_USER_INPUT`), a persisted query unknown by its hash
    /// (`PersistedQueryNotFound`) or badly described, a syntax error.
    pub fn admit(&self, mut request: Request) -> ServerResult<Request> {
        let limits = &self.limits;
        check_nesting(&request.query, limits.max_nesting).map_err(refuse)?;
        check_variables(request.variables.values(), limits.max_nesting).map_err(refuse)?;
        let doc = if let Some(value) = request.extensions.remove("persistedQuery") {
            let persisted: PersistedQuery = async_graphql::from_value(value).map_err(|_| {
                ServerError::new("Invalid \"PersistedQuery\" extension configuration.", None)
            })?;
            if persisted.version != 1 {
                return Err(ServerError::new(
                    format!(
                        "Only the \"PersistedQuery\" extension of version \"1\" is supported, and the current version is \"{}\".",
                        persisted.version
                    ),
                    None,
                ));
            }
            if request.query.is_empty() {
                // Checked when it was registered.
                let doc = recall(&self.persisted, &persisted.sha256_hash)
                    .ok_or_else(|| ServerError::new("PersistedQueryNotFound", None))?;
                request.set_parsed_query(doc);
                return Ok(request);
            }
            let hash = format!("{:x}", Sha256::digest(request.query.as_bytes()));
            if persisted.sha256_hash != hash {
                return Err(ServerError::new("provided sha does not match query", None));
            }
            let doc = self.parse(&request.query)?;
            remember(&self.persisted, hash, &doc);
            doc
        } else if let Some(doc) = recall(&self.parsed, &request.query) {
            doc
        } else {
            let doc = self.parse(&request.query)?;
            remember(&self.parsed, request.query.clone(), &doc);
            doc
        };
        request.set_parsed_query(doc);
        Ok(request)
    }

    /// Parses `text` and counts its selections against the limits.
    fn parse(&self, text: &str) -> ServerResult<ExecutableDocument> {
        let doc = async_graphql::parser::parse_query(text)?;
        check_document(&doc, &self.limits).map_err(refuse)?;
        Ok(doc)
    }
}

/// A refusal as async-graphql's request error, with its code.
fn refuse(message: String) -> ServerError {
    async_graphql::Error::new(message)
        .extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))
        .into_server_error(async_graphql::Pos::default())
}

/// Why text with U+0000 is refused: PostgreSQL cannot store it, so it would
/// reach the database only to fail there.
const NUL: &str = "text must not contain the NUL character (U+0000)";

/// Whether the escape after a backslash (`u0000`, `u{0}`) stands for U+0000.
fn escapes_nul(after: &[u8]) -> bool {
    let Some(rest) = after.strip_prefix(b"u") else {
        return false;
    };
    if let Some(braced) = rest.strip_prefix(b"{") {
        let digits = braced.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        return digits > 0
            && braced.get(digits) == Some(&b'}')
            && braced[..digits].iter().all(|b| *b == b'0');
    }
    rest.len() >= 4 && rest[..4].iter().all(|b| *b == b'0')
}

/// Refuses `text` when its brackets nest deeper than `max`, or when it holds
/// U+0000, raw or escaped in a string. Strings, block strings and comments
/// are skipped for nesting; one pass, constant memory.
///
/// # Errors
/// The refusal's message.
pub fn check_nesting(text: &str, max: usize) -> Result<(), String> {
    let bytes = text.as_bytes();
    if bytes.contains(&0) {
        return Err(NUL.into());
    }
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped triple quote inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\n' | b'\r') {
                    if bytes[i] == b'\\' && escapes_nul(&bytes[i + 1..]) {
                        return Err(NUL.into());
                    }
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > max {
                    return Err(format!("the document nests brackets more than {max} deep"));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Refuses variables nested deeper than `max` lists and objects, or holding
/// U+0000 in a string, walking them with an explicit stack.
fn check_variables<'a>(values: impl Iterator<Item = &'a Value>, max: usize) -> Result<(), String> {
    let mut stack: Vec<(&Value, usize)> = values.map(|v| (v, 1)).collect();
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::List(items) => Box::new(items.iter()),
            Value::Object(fields) => {
                if fields.keys().any(|k| k.contains('\0')) {
                    return Err(NUL.into());
                }
                Box::new(fields.values())
            }
            Value::String(s) if s.contains('\0') => return Err(NUL.into()),
            _ => continue,
        };
        if depth > max {
            return Err(format!("the variables nest more than {max} deep"));
        }
        stack.extend(children.map(|v| (v, depth + 1)));
    }
    Ok(())
}

/// Fields and aliases of a selection, fragments expanded.
#[derive(Clone, Copy, Default)]
struct Tally {
    fields: u64,
    aliases: u64,
}

impl Tally {
    fn add(self, other: Tally) -> Tally {
        Tally {
            fields: self.fields.saturating_add(other.fields),
            aliases: self.aliases.saturating_add(other.aliases),
        }
    }
}

/// Counts a document's selections with fragments expanded, each fragment
/// computed once. Recursion follows selection sets (bounded by the text
/// nesting already checked) and fragment spreads (bounded here by
/// `max_chain`).
struct Counter<'d> {
    doc: &'d ExecutableDocument,
    done: HashMap<&'d Name, Tally>,
    /// Fragments being counted, innermost last: a spread of one of them is a
    /// cycle.
    path: Vec<&'d Name>,
    max_chain: usize,
}

impl<'d> Counter<'d> {
    fn selection_set(&mut self, set: &'d SelectionSet) -> Result<Tally, String> {
        let mut total = Tally::default();
        for sel in &set.items {
            let t = match &sel.node {
                Selection::Field(f) => Tally {
                    fields: 1,
                    aliases: u64::from(f.node.alias.is_some()),
                }
                .add(self.selection_set(&f.node.selection_set.node)?),
                Selection::InlineFragment(i) => self.selection_set(&i.node.selection_set.node)?,
                Selection::FragmentSpread(s) => self.fragment(&s.node.fragment_name.node)?,
            };
            total = total.add(t);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'d Name) -> Result<Tally, String> {
        if let Some(t) = self.done.get(name) {
            return Ok(*t);
        }
        // An unknown fragment counts nothing; validation reports it.
        let Some(def) = self.doc.fragments.get(name) else {
            return Ok(Tally::default());
        };
        if self.path.contains(&name) {
            return Err(format!("fragment `{name}` spreads itself"));
        }
        if self.path.len() >= self.max_chain {
            return Err(format!(
                "fragments spread each other more than {} deep",
                self.max_chain
            ));
        }
        self.path.push(name);
        let t = self.selection_set(&def.node.selection_set.node);
        self.path.pop();
        let t = t?;
        self.done.insert(name, t);
        Ok(t)
    }
}

/// Checks a parsed document against `limits`: every operation and every
/// fragment definition is counted, so an unused fragment cannot hide work
/// from the limit either.
///
/// # Errors
/// The refusal's message.
pub fn check_document(doc: &ExecutableDocument, limits: &DocumentLimits) -> Result<(), String> {
    let mut counter = Counter {
        doc,
        done: HashMap::new(),
        path: Vec::new(),
        max_chain: limits.max_nesting,
    };
    let mut total = Tally::default();
    for (_, op) in doc.operations.iter() {
        total = total.add(counter.selection_set(&op.node.selection_set.node)?);
    }
    for name in doc.fragments.keys() {
        counter.fragment(name)?;
    }
    if total.fields > limits.max_fields {
        return Err(format!(
            "the document selects {} fields once its fragments are expanded; at most {} are allowed",
            total.fields, limits.max_fields
        ));
    }
    if total.aliases > limits.max_aliases {
        return Err(format!(
            "the document uses {} aliases once its fragments are expanded; at most {} are allowed",
            total.aliases, limits.max_aliases
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DocumentLimits {
        DocumentLimits {
            max_nesting: 8,
            max_fields: 100,
            max_aliases: 5,
        }
    }

    fn check(text: &str) -> Result<(), String> {
        check_nesting(text, limits().max_nesting)?;
        let doc = async_graphql::parser::parse_query(text).map_err(|e| e.to_string())?;
        check_document(&doc, &limits())
    }

    #[test]
    fn brackets_in_strings_and_comments_do_not_count() {
        let deep = "[".repeat(20);
        assert!(check(&format!("{{ a(x: \"{deep}\") }}")).is_ok());
        assert!(check(&format!("{{ a(x: \"\"\"{deep} \\\"\"\" {deep}\"\"\") }}")).is_ok());
        assert!(check(&format!("# {deep}\n{{ a }}")).is_ok());
        assert!(check(&format!("{{ a(x: {deep}1{}) }}", "]".repeat(20))).is_err());
    }

    #[test]
    fn nul_is_refused_raw_escaped_and_in_variables() {
        assert!(check("{ a(x: \"a\\u0000b\") }").is_err());
        assert!(check("{ a(x: \"a\\u{00}b\") }").is_err());
        assert!(check("{ a(x: \"a\u{0}b\") }").is_err());
        assert!(check("{ a(x: \"a\\u0001b \\\\u0000\") }").is_ok());
        let v = Value::List(vec![Value::String("a\0".into())]);
        assert!(check_variables(std::iter::once(&v), 8).is_err());
    }

    #[test]
    fn nesting_is_refused_without_recursion() {
        let n = 1_000_000;
        let text = format!("{{ a(x: {}1{}) }}", "[".repeat(n), "]".repeat(n));
        assert!(check_nesting(&text, 64).is_err());
        let text = format!("{}{}", "{ a ".repeat(n), "}".repeat(n));
        assert!(check_nesting(&text, 64).is_err());
    }

    #[test]
    fn fragments_count_as_expanded() {
        let mut text = String::from("{ ...F0 } fragment F0 on Query { a b }");
        for i in 1..=3 {
            text.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i - 1,
                i - 1
            ));
        }
        // F3 = 8 × F0 = 16 fields, under 100.
        let used = text.replacen("{ ...F0 }", "{ ...F3 }", 1);
        assert!(check(&used).is_ok());
        let mut bomb = String::from("fragment F0 on Query { a b }");
        for i in 1..=40 {
            bomb.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i - 1,
                i - 1
            ));
        }
        bomb.push_str(" { ...F40 }");
        let mut wide = limits();
        wide.max_nesting = 64;
        check_nesting(&bomb, 64).unwrap();
        let doc = async_graphql::parser::parse_query(&bomb).unwrap();
        let err = check_document(&doc, &wide).unwrap_err();
        assert!(err.contains("fields"), "{err}");
    }

    #[test]
    fn cycles_and_long_chains_are_refused() {
        let err = check("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
            .unwrap_err();
        assert!(err.contains("spreads itself"), "{err}");
        let mut chain = String::from("{ ...F0 }");
        for i in 0..20 {
            chain.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        chain.push_str(" fragment F20 on Query { a }");
        let err = check(&chain).unwrap_err();
        assert!(err.contains("deep"), "{err}");
    }

    #[test]
    fn aliases_count_as_expanded() {
        let text = "{ ...F ...F } fragment F on Query { a: x b: x c: x }";
        let err = check(text).unwrap_err();
        assert!(err.contains("aliases"), "{err}");
    }

    #[test]
    fn variables_are_walked_iteratively() {
        let mut v = Value::Number(1.into());
        for _ in 0..100_000 {
            v = Value::List(vec![v]);
        }
        assert!(check_variables(std::iter::once(&v), 8).is_err());
        // Dropping a 100,000-deep value recurses; forget it in the test.
        std::mem::forget(v);
        let flat = Value::List(vec![Value::Null; 10]);
        assert!(check_variables(std::iter::once(&flat), 8).is_ok());
    }
}
