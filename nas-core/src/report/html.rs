//! The HTML page of a report: its Markdown converted by pulldown-cmark, the
//! charts inlined as SVG, one inline style sheet with a light and a dark
//! theme. Self-contained: no script, no font, no image or link to fetch.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::error::Result;

use super::charts::Chart;
use super::markdown::{Document, Part};
use super::Pack;

/// Light theme by default, dark where the reader asks for it. Charts sit on a
/// light card in both, so their colours read the same.
const STYLE: &str = r#"
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --border: #d1d9e0;
  --head: #f6f8fa; --stripe: #f9fafb; --code: #eff1f3; --card: #ffffff; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --border: #3d444d;
    --head: #161b22; --stripe: #11161d; --code: #262c36; --card: #f6f8fa; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.9em; border-bottom: 1px solid var(--border); padding-bottom: .3em; }
h2 { font-size: 1.45em; margin-top: 2em; border-bottom: 1px solid var(--border); padding-bottom: .2em; }
h3 { font-size: 1.15em; margin-top: 1.6em; }
p, li { max-width: 80ch; }
code { background: var(--code); padding: .1em .35em; border-radius: 4px;
  font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto; max-width: 100%;
  font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--border); padding: 4px 10px; white-space: nowrap; }
th { background: var(--head); text-align: left; }
tbody tr:nth-child(even) td { background: var(--stripe); }
figure.chart { margin: 1em 0; padding: 10px; background: var(--card); border: 1px solid var(--border);
  border-radius: 8px; width: fit-content; max-width: 100%; }
figure.chart svg { display: block; max-width: 100%; height: auto; }
figure.chart figcaption { color: #3d444d; font-size: 13px; margin: 6px 4px 0; }
"#;

/// Escapes text for HTML content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// Markdown to HTML as the reports use it (GFM tables). Images whose target
/// is a key of `inline` are replaced by that SVG, so the page needs no file
/// beside it.
pub fn markdown_to_html(md: &str, inline: &[(&str, &str)]) -> String {
    let mut out = String::new();
    // While inside an inlined image: its SVG, its alt text so far, its title, its depth.
    let mut pending: Option<(&str, String, String, usize)> = None;
    let events = Parser::new_ext(md, Options::ENABLE_TABLES).filter_map(|ev| {
        if let Some((svg, alt, title, depth)) = pending.as_mut() {
            match ev {
                Event::Start(Tag::Image { .. }) => *depth += 1,
                Event::End(TagEnd::Image) if *depth > 1 => *depth -= 1,
                Event::End(TagEnd::Image) => {
                    let caption = if title.is_empty() { alt.as_str() } else { title.as_str() };
                    let html = figure(svg, &escape_html(caption));
                    pending = None;
                    return Some(Event::Html(CowStr::from(html)));
                }
                Event::Text(t) | Event::Code(t) => alt.push_str(&t),
                _ => {}
            }
            return None;
        }
        if let Event::Start(Tag::Image { dest_url, title, .. }) = &ev {
            if let Some((_, svg)) = inline.iter().find(|(name, _)| *name == dest_url.as_ref()) {
                pending = Some((svg, String::new(), title.to_string(), 1));
                return None;
            }
        }
        Some(ev)
    });
    pulldown_cmark::html::push_html(&mut out, events);
    // A figure cannot sit in a paragraph: unwrap images that stood alone.
    out.replace("<p><figure", "<figure")
        .replace("</figure>\n</p>\n", "</figure>\n")
}

/// A chart on its card with a caption.
fn figure(svg: &str, caption: &str) -> String {
    let svg = strip_prolog(svg);
    let mut f = format!("<figure class=\"chart\" role=\"img\" aria-label=\"{caption}\">\n{svg}");
    if !svg.ends_with('\n') {
        f.push('\n');
    }
    if !caption.is_empty() {
        f.push_str(&format!("<figcaption>{caption}</figcaption>\n"));
    }
    f.push_str("</figure>\n");
    f
}

/// Drops an `<?xml ...?>` declaration, which has no place inside HTML.
fn strip_prolog(svg: &str) -> &str {
    let s = svg.trim_start();
    if s.starts_with("<?xml") {
        if let Some(end) = s.find("?>") {
            return s[end + 2..].trim_start();
        }
    }
    s
}

/// A whole page around a body.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n<title>{}</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape_html(title)
    )
}

/// A report document as a page: every Markdown part converted, every chart
/// drawn by `draw` into its slot.
pub fn render(title: &str, doc: &Document, draw: impl Fn(&Chart) -> Result<String>) -> Result<String> {
    let mut body = String::new();
    for part in doc.parts() {
        match part {
            Part::Markdown(md) => body.push_str(&markdown_to_html(md, &[])),
            Part::Chart(chart) => body.push_str(&figure(&draw(chart)?, &escape_html(&chart.caption()))),
        }
    }
    Ok(page(title, &body))
}

impl Pack {
    /// The HTML report: the Markdown summary as a page, with its charts.
    pub fn to_html(&self) -> Result<String> {
        render("Kernel-Aware NAS Multi-Hardware Pack", &self.document(), |c| {
            self.draw(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_named_inline_become_figures_and_others_stay() {
        let md = "# T\n\n![a chart](c.svg \"the caption\")\n\n![alt *text*](c.svg)\n\n![other](o.png)\n";
        let html = markdown_to_html(md, &[("c.svg", "<?xml version=\"1.0\"?>\n<svg></svg>")]);
        assert!(html.contains("<figure class=\"chart\""), "{html}");
        assert!(html.contains("<svg></svg>") && !html.contains("<?xml"), "{html}");
        assert!(html.contains("<figcaption>the caption</figcaption>"), "{html}");
        assert!(html.contains("<figcaption>alt text</figcaption>"), "{html}");
        assert_eq!(html.matches("<svg></svg>").count(), 2, "{html}");
        assert!(html.contains("<img src=\"o.png\""), "{html}");
        assert!(!html.contains("c.svg"), "{html}");
        assert!(
            !html.contains("<p><figure") && !html.contains("</figure>\n</p>"),
            "{html}"
        );
    }

    #[test]
    fn page_escapes_its_title_and_has_both_themes() {
        let p = page("a <b> & c", "<p>x</p>\n");
        assert!(p.contains("<title>a &lt;b&gt; &amp; c</title>"));
        assert!(p.contains("prefers-color-scheme: dark"));
        assert!(!p.contains("<script"));
    }
}
