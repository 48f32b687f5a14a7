//! A report as a small document model (headings, text, lists, figures, tables, code), rendered two
//! ways from the same blocks: GitHub Markdown, to read in a repository or a pull request, and one
//! self-contained HTML page, to open from disk or mail to someone.
//!
//! The HTML page needs no server and loads nothing from anywhere: its CSS is inline and its
//! figures are embedded as base64 `data:` URIs, so it still works when moved away from the report
//! folder, offline, or behind a proxy. Links to the SVG figures and table files stay relative, so
//! they work while the page sits in its report folder.
//!
//! Text is plain text everywhere: the only markup recognised is `backticks` for code. Everything
//! else is escaped, so layer names, file names and user-supplied labels print as written.

use crate::ReportError;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

/// A whole report: a title line, a subtitle (what was run, when, on what), then the content.
pub struct Document {
    /// The level-1 heading and the HTML page title.
    pub title: String,
    /// One line under the title; empty for none.
    pub subtitle: String,
    /// The content, in order.
    pub blocks: Vec<Block>,
}

/// One piece of a report. Paths are relative to the report folder (the `root` given to
/// [`render_html`]), so the Markdown links work from the folder it is written to.
pub enum Block {
    /// A section heading. Level-2 headings make the HTML page's table of contents.
    Heading {
        /// 2 for a section, 3 for a subsection (the title is level 1; other values are clamped
        /// to 2..=6).
        level: u8,
        /// Heading text, following the paragraph rules; also gives the anchor id.
        text: String,
    },
    /// A paragraph of plain text; `backticks` mark code.
    Paragraph(String),
    /// A bullet list; each item follows the paragraph rules.
    List(Vec<String>),
    /// A figure, shown as its PNG (embedded in the HTML page) with an optional SVG link.
    Figure {
        /// PNG path relative to the report folder, e.g. `figures/cka-mlp.png`.
        png: String,
        /// The same figure as SVG, linked for print-quality zoom; `None` for no link.
        svg: Option<String>,
        /// Printed under the figure (and its alt text): say what to look at.
        caption: String,
    },
    /// A table of already formatted cells (the caller decides precision).
    Table {
        /// Printed above the table.
        caption: String,
        /// Column names.
        header: Vec<String>,
        /// Rows of cells; short rows are padded with empty cells.
        rows: Vec<Vec<String>>,
        /// `numeric[j]` right-aligns column `j`, so digits line up; missing entries are `false`.
        numeric: Vec<bool>,
        /// The same data as files (CSV, Parquet), relative to the report folder, linked under the
        /// table for readers who want the numbers rather than the picture.
        files: Vec<String>,
    },
    /// A preformatted block (a command line, a config), shown verbatim.
    Code(String),
}

/// Split `s` into plain-text and code parts at matching backticks. An unmatched backtick is
/// plain text.
fn spans(s: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        if open > 0 {
            out.push((false, &rest[..open]));
        }
        out.push((true, &rest[open + 1..open + 1 + len]));
        rest = &rest[open + 2 + len..];
    }
    if !rest.is_empty() {
        out.push((false, rest));
    }
    out
}

/// Escape for HTML text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text with `backticks` as `<code>`, everything else escaped.
fn html_inline(s: &str) -> String {
    map_spans(s, |t| format!("<code>{}</code>", esc(t)), esc)
}

/// `s` with each code span (see [`spans`]) written by `code` and the text between by `text`.
fn map_spans(s: &str, code: impl Fn(&str) -> String, text: impl Fn(&str) -> String) -> String {
    spans(s)
        .into_iter()
        .map(|(is_code, t)| if is_code { code(t) } else { text(t) })
        .collect()
}

/// Percent-encode a relative path for a link (`href`, Markdown destination): spaces, `#`, `?`
/// and the like in file names must not end the path or start a fragment.
fn url_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Plain text as Markdown: characters that would start emphasis, links or raw HTML are
/// backslash-escaped, as are line starts that would make a heading, list or quote (when `block`:
/// table cells cannot start blocks).
fn md_text(s: &str, block: bool) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut line_start = true;
    for (i, &c) in chars.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|c| c.is_alphanumeric())
        };
        let escape = match c {
            '\\' | '<' | '>' | '*' | '[' | ']' | '|' => true,
            // Inside a word (fc1_weight) an underscore is literal in GitHub Markdown.
            '_' => !(word(i.checked_sub(1)) && word(Some(i + 1))),
            '#' | '-' | '+' | '=' => block && line_start,
            '.' | ')' => {
                // "1. " at a line start would begin an ordered list.
                let mut j = i;
                while j > 0 && chars[j - 1].is_ascii_digit() {
                    j -= 1;
                }
                let ends = chars.get(i + 1).is_none_or(|c| c.is_whitespace());
                block && ends && j < i && (j == 0 || chars[j - 1] == '\n')
            }
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
        if c == '\n' {
            line_start = true;
        } else if c != ' ' {
            line_start = false;
        }
    }
    out
}

/// Text with `backticks` kept as Markdown code spans (their content is verbatim there), the rest
/// escaped.
fn md_inline(s: &str) -> String {
    map_spans(s, |t| format!("`{t}`"), |t| md_text(t, true))
}

/// Cell text for a GitHub table: one line, `|` escaped (also inside code spans, where GitHub
/// expects `\|` too).
fn md_cell(s: &str) -> String {
    let one_line = s.replace(['\n', '\r'], " ");
    map_spans(
        &one_line,
        |t| format!("`{}`", t.replace('|', "\\|")),
        |t| md_text(t, false),
    )
}

/// A heading's anchor id: lower case, letters and digits kept, spaces and dashes as one dash
/// (as GitHub does), made unique with `-1`, `-2`... against `used`.
fn slug(text: &str, used: &mut HashSet<String>) -> String {
    let mut s = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            s.push(c);
        } else if matches!(c, ' ' | '-' | '_' | '.' | '/') && !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let base = match s.trim_end_matches('-') {
        "" => "section".to_string(),
        t => t.to_string(),
    };
    let mut id = base.clone();
    let mut k = 0;
    while !used.insert(id.clone()) {
        k += 1;
        id = format!("{base}-{k}");
    }
    id
}

/// Table shape: the number of columns is the widest of the header and the rows, so no cell is
/// dropped; missing cells are empty.
fn table_width(header: &[String], rows: &[Vec<String>]) -> usize {
    rows.iter().map(Vec::len).fold(header.len(), usize::max)
}

fn cell(row: &[String], j: usize) -> &str {
    row.get(j).map(String::as_str).unwrap_or("")
}

/// Render as GitHub Markdown. Figures are `![caption](png)` followed by the caption in italics
/// and an `[SVG](svg)` link; tables are pipe tables with an alignment row (numeric columns right
/// aligned) and their files linked underneath.
pub fn render_markdown(doc: &Document) -> String {
    let mut out = format!("# {}\n\n", md_inline(doc.title.trim()));
    if !doc.subtitle.trim().is_empty() {
        let _ = write!(out, "{}\n\n", md_inline(doc.subtitle.trim()));
    }
    for block in &doc.blocks {
        match block {
            Block::Heading { level, text } => {
                let hashes = "#".repeat((*level).clamp(2, 6) as usize);
                let _ = write!(out, "{hashes} {}\n\n", md_inline(text.trim()));
            }
            Block::Paragraph(text) => {
                let _ = write!(out, "{}\n\n", md_inline(text.trim()));
            }
            Block::List(items) => {
                for item in items {
                    let body = md_inline(item.trim()).replace('\n', "\n  ");
                    let _ = writeln!(out, "- {body}");
                }
                out.push('\n');
            }
            Block::Figure { png, svg, caption } => {
                let alt = caption
                    .replace(['\n', '\r'], " ")
                    .replace('\\', "\\\\")
                    .replace('[', "\\[")
                    .replace(']', "\\]");
                let _ = write!(out, "![{alt}]({})\n\n", url_path(png));
                let mut line = Vec::new();
                if !caption.trim().is_empty() {
                    line.push(format!("*{}*", md_inline(caption.trim())));
                }
                if let Some(svg) = svg {
                    line.push(format!("[SVG]({})", url_path(svg)));
                }
                if !line.is_empty() {
                    let _ = write!(out, "{}\n\n", line.join(" "));
                }
            }
            Block::Table {
                caption,
                header,
                rows,
                numeric,
                files,
            } => {
                if !caption.trim().is_empty() {
                    let _ = write!(out, "**{}**\n\n", md_inline(caption.trim()));
                }
                let width = table_width(header, rows);
                if width > 0 {
                    let line = |row: &[String]| {
                        let cells: Vec<String> =
                            (0..width).map(|j| md_cell(cell(row, j))).collect();
                        format!("| {} |\n", cells.join(" | "))
                    };
                    out.push_str(&line(header));
                    let align: Vec<&str> = (0..width)
                        .map(|j| {
                            if numeric.get(j).copied().unwrap_or(false) {
                                "---:"
                            } else {
                                ":---"
                            }
                        })
                        .collect();
                    let _ = writeln!(out, "| {} |", align.join(" | "));
                    for row in rows {
                        out.push_str(&line(row));
                    }
                    out.push('\n');
                }
                if !files.is_empty() {
                    let links: Vec<String> = files
                        .iter()
                        .map(|f| format!("[{}]({})", md_text(f, false), url_path(f)))
                        .collect();
                    let _ = write!(out, "Data: {}\n\n", links.join(", "));
                }
            }
            Block::Code(code) => {
                // The fence is longer than any backtick run in the code, so the code cannot end it.
                let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
                let fence = "`".repeat(longest.max(2) + 1);
                let body = code.strip_suffix('\n').unwrap_or(code);
                let _ = write!(out, "{fence}text\n{body}\n{fence}\n\n");
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Inline style sheet: a readable column on a laptop screen, system fonts, figures that shrink to
/// the column, tables that scroll sideways rather than squash.
const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","Liberation Sans",sans-serif;font-size:16px;line-height:1.55;color:#1f2328;background:#fff}
.wrap{max-width:1100px;margin:0 auto;padding:0 24px}
header.top{background:#f6f8fa;border-bottom:1px solid #d0d7de;padding:18px 0 14px;margin-bottom:22px}
h1{font-size:1.75rem;line-height:1.25;margin:0 0 4px}
.subtitle{margin:0;color:#59636e}
h2{font-size:1.4rem;margin:2.2rem 0 .6rem;padding-bottom:.25rem;border-bottom:1px solid #d0d7de}
h3{font-size:1.15rem;margin:1.5rem 0 .5rem}
h4,h5,h6{font-size:1rem;margin:1.2rem 0 .4rem}
p,ul{margin:.6rem 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.88em;background:#eff1f3;padding:.1em .3em;border-radius:4px}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:12px 14px;overflow-x:auto;line-height:1.4}
pre code{background:none;padding:0;font-size:.85rem}
figure{margin:1.4rem 0}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:.92rem;color:#59636e;margin:.4rem 0}
figure.table figcaption{font-weight:600;color:#1f2328}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.92rem}
th,td{padding:5px 10px;border:1px solid #d0d7de;text-align:left;vertical-align:top}
th{background:#eef1f4}
tbody tr:nth-child(even){background:#f6f8fa}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.files{font-size:.9rem;margin:.4rem 0 0}
nav.toc{border:1px solid #d0d7de;border-radius:6px;padding:8px 18px;margin:0 0 1.2rem;display:inline-block;min-width:260px;max-width:100%}
nav.toc p{margin:0;font-weight:600}
nav.toc ol{margin:.3rem 0 .2rem;padding-left:1.3rem}
a{color:#0969da}
"#;

/// The standard base64 alphabet (RFC 4648 section 4), with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The media type of an image file from its first bytes, so a figure is embedded as what it is.
fn media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).contains("<svg") {
        Some("image/svg+xml")
    } else {
        None
    }
}

/// Render as one self-contained HTML page. `root` is the report folder: figures are read from
/// `root.join(png)` and embedded, so a missing or unreadable figure is an error naming its file
/// rather than a broken image in a page that looks finished.
pub fn render_html(doc: &Document, root: &Path) -> Result<String, ReportError> {
    let mut used = HashSet::from(["contents".to_string()]);
    let ids: Vec<Option<String>> = doc
        .blocks
        .iter()
        .map(|b| match b {
            Block::Heading { text, .. } => Some(slug(text, &mut used)),
            _ => None,
        })
        .collect();
    let mut out = String::new();
    let title = esc(doc.title.trim());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <header class=\"top\"><div class=\"wrap\">\n<h1>{}</h1>\n",
        html_inline(doc.title.trim())
    );
    if !doc.subtitle.trim().is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"subtitle\">{}</p>",
            html_inline(doc.subtitle.trim())
        );
    }
    out.push_str("</div></header>\n<main class=\"wrap\">\n");

    let toc: Vec<(String, &str)> = doc
        .blocks
        .iter()
        .zip(&ids)
        .filter_map(|(b, id)| match (b, id) {
            (Block::Heading { level, text }, Some(id)) if (*level).clamp(2, 6) == 2 => {
                Some((id.clone(), text.as_str()))
            }
            _ => None,
        })
        .collect();
    if !toc.is_empty() {
        out.push_str(
            "<nav class=\"toc\" id=\"contents\" aria-label=\"Contents\">\n<p>Contents</p>\n<ol>\n",
        );
        for (id, text) in &toc {
            let _ = writeln!(
                out,
                "<li><a href=\"#{id}\">{}</a></li>",
                html_inline(text.trim())
            );
        }
        out.push_str("</ol>\n</nav>\n");
    }

    for (block, id) in doc.blocks.iter().zip(&ids) {
        match block {
            Block::Heading { level, text } => {
                let l = (*level).clamp(2, 6);
                let id = id.as_deref().unwrap_or("section");
                let _ = writeln!(out, "<h{l} id=\"{id}\">{}</h{l}>", html_inline(text.trim()));
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "<p>{}</p>", html_inline(text.trim()));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", html_inline(item.trim()));
                }
                out.push_str("</ul>\n");
            }
            Block::Figure { png, svg, caption } => {
                let path = root.join(png);
                let bytes = std::fs::read(&path).map_err(|err| ReportError::Io {
                    path: path.clone(),
                    err,
                })?;
                let mime = media_type(&bytes).ok_or_else(|| ReportError::Encode {
                    path: path.clone(),
                    msg: "not a PNG, JPEG or SVG image, cannot embed it".into(),
                })?;
                let _ = write!(
                    out,
                    "<figure>\n<img src=\"data:{mime};base64,{}\" alt=\"{}\">\n",
                    base64(&bytes),
                    esc(caption.trim())
                );
                let mut cap = html_inline(caption.trim());
                if let Some(svg) = svg {
                    if !cap.is_empty() {
                        cap.push(' ');
                    }
                    let _ = write!(cap, "(<a href=\"{}\">SVG</a>)", esc(&url_path(svg)));
                }
                if !cap.is_empty() {
                    let _ = writeln!(out, "<figcaption>{cap}</figcaption>");
                }
                out.push_str("</figure>\n");
            }
            Block::Table {
                caption,
                header,
                rows,
                numeric,
                files,
            } => {
                out.push_str("<figure class=\"table\">\n");
                if !caption.trim().is_empty() {
                    let _ = writeln!(
                        out,
                        "<figcaption>{}</figcaption>",
                        html_inline(caption.trim())
                    );
                }
                let width = table_width(header, rows);
                let class = |j: usize| {
                    if numeric.get(j).copied().unwrap_or(false) {
                        " class=\"num\""
                    } else {
                        ""
                    }
                };
                if width > 0 {
                    out.push_str("<div class=\"scroll\"><table>\n<thead><tr>");
                    for j in 0..width {
                        let _ =
                            write!(out, "<th{}>{}</th>", class(j), html_inline(cell(header, j)));
                    }
                    out.push_str("</tr></thead>\n<tbody>\n");
                    for row in rows {
                        out.push_str("<tr>");
                        for j in 0..width {
                            let _ =
                                write!(out, "<td{}>{}</td>", class(j), html_inline(cell(row, j)));
                        }
                        out.push_str("</tr>\n");
                    }
                    out.push_str("</tbody>\n</table></div>\n");
                }
                if !files.is_empty() {
                    let links: Vec<String> = files
                        .iter()
                        .map(|f| format!("<a href=\"{}\">{}</a>", esc(&url_path(f)), esc(f)))
                        .collect();
                    let _ = writeln!(out, "<p class=\"files\">Data: {}</p>", links.join(" · "));
                }
                out.push_str("</figure>\n");
            }
            Block::Code(code) => {
                let body = code.strip_suffix('\n').unwrap_or(code);
                let _ = writeln!(out, "<pre><code>{}</code></pre>", esc(body));
            }
        }
    }
    out.push_str("</main>\n</body>\n</html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("strata-doc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn doc(blocks: Vec<Block>) -> Document {
        Document {
            title: "CKA <report>".into(),
            subtitle: "seeds 1 and 2".into(),
            blocks,
        }
    }

    fn heading(level: u8, text: &str) -> Block {
        Block::Heading {
            level,
            text: text.into(),
        }
    }

    fn table() -> Block {
        Block::Table {
            caption: "Accuracy".into(),
            header: vec!["model".into(), "acc".into()],
            rows: vec![
                vec!["a|b".into(), "0.91".into()],
                vec!["`x|y`".into(), "0.85".into()],
                vec!["short".into()],
            ],
            numeric: vec![false, true],
            files: vec!["tables/accuracy.csv".into()],
        }
    }

    /// Decode standard padded base64, written independently of the encoder for round trips.
    fn decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        };
        let mut out = Vec::new();
        for q in s.as_bytes().chunks(4) {
            let pad = q.iter().filter(|c| **c == b'=').count();
            let n = q
                .iter()
                .map(|&c| if c == b'=' { 0 } else { val(c) as u32 })
                .fold(0u32, |n, v| (n << 6) | v);
            out.extend(&n.to_be_bytes()[1..4 - pad]);
        }
        out
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
        let all: Vec<u8> = (0..=255u8).rev().chain(0..=255).collect();
        for n in [0, 1, 2, 3, 254, 255, 511, 512] {
            assert_eq!(decode(&base64(&all[..n])), &all[..n]);
        }
    }

    #[test]
    fn html_escapes_text_and_marks_code() {
        let d = doc(vec![
            Block::Paragraph("<script>alert('x')</script> & `a<b` done".into()),
            Block::List(vec!["uses `fc1` & <b>".into()]),
        ]);
        let html = render_html(&d, Path::new("/nonexistent")).unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains(
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; <code>a&lt;b</code> done"
        ));
        assert!(html.contains("<li>uses <code>fc1</code> &amp; &lt;b&gt;</li>"));
        assert!(html.contains("<title>CKA &lt;report&gt;</title>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<meta name=\"viewport\""));
    }

    #[test]
    fn unmatched_backtick_is_text() {
        assert_eq!(html_inline("a ` b `c` d"), "a <code> b </code>c` d");
        assert_eq!(html_inline("x`"), "x`");
    }

    #[test]
    fn markdown_tables_align_and_escape_pipes() {
        let md = render_markdown(&doc(vec![table()]));
        let lines: Vec<&str> = md.lines().collect();
        let at = lines.iter().position(|l| l.starts_with("| model")).unwrap();
        assert_eq!(lines[at], "| model | acc |");
        assert_eq!(lines[at + 1], "| :--- | ---: |");
        assert_eq!(lines[at + 2], "| a\\|b | 0.91 |");
        assert_eq!(lines[at + 3], "| `x\\|y` | 0.85 |");
        assert_eq!(lines[at + 4], "| short |  |");
        assert!(md.contains("**Accuracy**"));
        assert!(md.contains("[tables/accuracy.csv](tables/accuracy.csv)"));
    }

    #[test]
    fn markdown_blocks() {
        let md = render_markdown(&doc(vec![
            heading(2, "Results"),
            heading(9, "Deep"),
            Block::Paragraph("Layer `fc1_w` vs fc1_w and <b> *x*".into()),
            Block::List(vec!["one".into(), "# two".into()]),
            Block::Figure {
                png: "figures/cka mlp.png".into(),
                svg: Some("figures/cka mlp.svg".into()),
                caption: "CKA [seed 1]".into(),
            },
            Block::Code("a ``` b\n".into()),
        ]));
        assert!(
            md.starts_with("# CKA \\<report\\>\n\nseeds 1 and 2\n\n## Results\n\n###### Deep\n")
        );
        assert!(md.contains("Layer `fc1_w` vs fc1_w and \\<b\\> \\*x\\*\n"));
        assert!(md.contains("- one\n- \\# two\n"));
        assert!(md.contains("![CKA \\[seed 1\\]](figures/cka%20mlp.png)\n\n*CKA \\[seed 1\\]* [SVG](figures/cka%20mlp.svg)"));
        assert!(md.contains("````text\na ``` b\n````"));
        assert!(!md.ends_with("\n\n"));
    }

    #[test]
    fn markdown_escapes_line_starts_that_would_be_markup() {
        assert_eq!(md_text("1. not a list", true), "1\\. not a list");
        assert_eq!(md_text("12) nor this", true), "12\\) nor this");
        assert_eq!(md_text("0.91 is a number", true), "0.91 is a number");
        assert_eq!(md_text("page 1. ok", true), "page 1. ok");
        assert_eq!(md_text("- a\n+ b\nx - y", true), "\\- a\n\\+ b\nx - y");
        assert_eq!(md_text("- a", false), "- a");
    }

    #[test]
    fn slugs_are_unique_and_readable() {
        let mut used = HashSet::from(["contents".to_string()]);
        assert_eq!(slug("CKA: float vs. int4", &mut used), "cka-float-vs-int4");
        assert_eq!(
            slug("CKA: float vs. int4", &mut used),
            "cka-float-vs-int4-1"
        );
        assert_eq!(slug("Contents", &mut used), "contents-1");
        assert_eq!(slug("???", &mut used), "section");
    }

    #[test]
    fn html_embeds_figures_and_links_only_relative_files() {
        let dir = tmp_dir("embed");
        std::fs::create_dir_all(dir.join("figures")).unwrap();
        let plot = crate::LinePlot {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x: crate::XAxis::Numeric(vec![1.0, 2.0]),
            series: vec![crate::Series {
                name: "s".into(),
                y: vec![Some(0.1), Some(0.2)],
                spread: None,
                style: crate::Style::Line,
                dashed: false,
            }],
            y_range: None,
        };
        crate::line_plot_png(&plot, &dir.join("figures/a.png")).unwrap();
        let png = std::fs::read(dir.join("figures/a.png")).unwrap();
        let d = doc(vec![
            heading(2, "Figures"),
            heading(3, "Detail"),
            heading(2, "Tables"),
            Block::Figure {
                png: "figures/a.png".into(),
                svg: Some("figures/a.svg".into()),
                caption: "Accuracy per `epoch`".into(),
            },
            table(),
            Block::Paragraph("see https://example.com for more".into()),
        ]);
        let html = render_html(&d, &dir).unwrap();
        let start = html.find("data:image/png;base64,").unwrap() + 22;
        let end = start + html[start..].find('"').unwrap();
        assert_eq!(decode(&html[start..end]), png);
        assert!(html.contains("(<a href=\"figures/a.svg\">SVG</a>)"));
        assert!(html.contains("<a href=\"tables/accuracy.csv\">"));
        assert!(html.contains("<td class=\"num\">0.91</td>"));
        // Table of contents from the level-2 headings only, pointing at their anchors.
        assert!(html.contains("<li><a href=\"#figures\">Figures</a></li>\n<li><a href=\"#tables\">Tables</a></li>\n</ol>"));
        assert!(html.contains("<h3 id=\"detail\">Detail</h3>"));
        // Nothing is loaded from, or linked to, another host.
        for attr in ["src=\"", "href=\""] {
            for (i, _) in html.match_indices(attr) {
                let v = &html[i + attr.len()..];
                let v = &v[..v.find('"').unwrap()];
                assert!(!v.contains("://") && !v.starts_with("//"), "{attr}{v}");
            }
        }
        assert!(!html.contains("@import") && !html.contains("url("));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_or_non_image_figure_is_an_error_naming_it() {
        let dir = tmp_dir("missing");
        let fig = |png: &str| {
            doc(vec![Block::Figure {
                png: png.into(),
                svg: None,
                caption: String::new(),
            }])
        };
        let err = render_html(&fig("figures/nope.png"), &dir).unwrap_err();
        assert!(err.to_string().contains("figures/nope.png"), "{err}");
        std::fs::write(dir.join("notes.png"), "hello").unwrap();
        let err = render_html(&fig("notes.png"), &dir).unwrap_err();
        assert!(err.to_string().contains("notes.png"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
