//! The pages' templates (`crates/server/templates/`, embedded in the binary) and the engine that
//! renders them: minijinja, with HTML auto-escaping on for every template, so every value a
//! page is given (names, errors, table values) is escaped by the engine: no data can open a tag
//! or leave an attribute. The only markup passed in is the SVG the code draws
//! ([`super::svg`], which escapes what it embeds), marked safe by [`markup`].

use std::sync::OnceLock;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use super::format::css_ident;

/// The page a browser gets without the token (no data in it).
pub(crate) const SIGN_IN: &str = include_str!("../../templates/sign_in.html");

/// Every template, by the name pages extend, import and render it with.
const TEMPLATES: [(&str, &str); 12] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("runs.html", include_str!("../../templates/runs.html")),
    ("run.html", include_str!("../../templates/run.html")),
    ("lineage.html", include_str!("../../templates/lineage.html")),
    ("tables.html", include_str!("../../templates/tables.html")),
    ("table.html", include_str!("../../templates/table.html")),
    ("quality.html", include_str!("../../templates/quality.html")),
    (
        "quarantine.html",
        include_str!("../../templates/quarantine.html"),
    ),
    ("task.html", include_str!("../../templates/task.html")),
    ("trends.html", include_str!("../../templates/trends.html")),
];

/// The environment with every template, loaded once; an error names the template that does
/// not parse (a bug: the unit tests render every page).
fn environment() -> Result<&'static Environment<'static>, String> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // minijinja escapes `.html` templates by default; said here for every name, so that
        // escaping never depends on how a template is named.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        // A name a template uses and the page does not give is an error, not an empty string.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("css_ident", |s: &str| css_ident(s));
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("template {name}: {e:#}"))?;
        }
        Ok(env)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Which entry of the navigation is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Nav {
    Runs,
    Lineage,
    Tables,
    Quality,
    Trends,
}

/// What the layout (`base.html`) shows around a page.
#[derive(Debug, Serialize)]
pub(crate) struct Layout<'a> {
    /// The project's name, in the header.
    pub(crate) project: &'a str,
    /// The page's title and heading.
    pub(crate) title: &'a str,
    pub(crate) nav: Nav,
    /// The CSRF token the page's script sends with its POSTs.
    pub(crate) csrf: &'a str,
    /// The page reloads itself every few seconds (a run in progress).
    pub(crate) refresh: bool,
}

/// Template `name` rendered with `layout` and the page's data `page`.
pub(crate) fn render(name: &str, layout: &Layout<'_>, page: Value) -> Result<String, String> {
    let env = environment()?;
    let template = env
        .get_template(name)
        .map_err(|e| format!("template {name}: {e:#}"))?;
    template
        .render(context! { layout, page })
        .map_err(|e| format!("template {name}: {e:#}"))
}

/// SVG markup drawn by [`super::svg`], given to a template as it is (not escaped again).
pub(crate) fn markup(svg: String) -> Value {
    Value::from_safe_string(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let env = environment().unwrap_or_else(|e| panic!("{e}"));
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn values_are_escaped_and_markup_is_not() {
        let layout = Layout {
            project: "p&<q>",
            title: "t\"'",
            nav: Nav::Trends,
            csrf: "c",
            refresh: true,
        };
        let html = render(
            "error.html",
            &layout,
            context! { status => 500, message => "<script>alert(\"x\") & 'y'</script>" },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            html.contains(
                "<strong>500</strong> &lt;script&gt;alert(&quot;x&quot;) &amp; &#x27;y&#x27;&lt;&#x2f;script&gt;</p>"
            ),
            "{html}"
        );
        assert!(html.contains("<title>t&quot;&#x27; · p&amp;&lt;q&gt; · Tributary</title>"));
        assert!(html.contains("<body data-refresh=\"5\">"));
        assert!(html.contains(
            "<a href=\"&#x2f;trends\" class=\"current\" aria-current=\"page\">Trends</a>"
        ));
        assert!(!html.contains("<script>alert"));
        assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
        let safe = markup("<svg><a href=\"/x\"></a></svg>".into());
        let env = environment().unwrap_or_else(|e| panic!("{e}"));
        let out = env
            .render_str("{{ s }}|{{ t }}", context! { s => safe, t => "<svg>" })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "<svg><a href=\"/x\"></a></svg>|&lt;svg&gt;");
    }

    #[test]
    fn an_unknown_name_is_an_error() {
        let layout = Layout {
            project: "p",
            title: "t",
            nav: Nav::Runs,
            csrf: "c",
            refresh: false,
        };
        let e = render("error.html", &layout, context! { status => 500 });
        assert!(e.is_err_and(|e| e.contains("error.html")));
        let e = render("nope.html", &layout, context! {});
        assert!(e.is_err_and(|e| e.contains("nope.html")));
    }
}
