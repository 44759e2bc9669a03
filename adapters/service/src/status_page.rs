//! The status page `GET /`: the pool at a glance, for a person.
//!
//! One self-contained HTML5 document: every proxy with its state, health
//! score, open connections and recent failures by category. The page loads
//! nothing from anywhere (no script, no stylesheet, font or image URL; the
//! only style is one constant inline `<style>` block, no `style` attribute;
//! the health bars are `<meter>` elements) and refreshes itself with
//! `<meta http-equiv="refresh">`, so it works under a Content-Security-Policy
//! without `script-src` and with `style-src` limited to that block.
//!
//! Every piece of text taken from the [`Snapshot`] is HTML-escaped, proxy ids
//! included: they come from an operator's configuration, but the page treats
//! them as untrusted. The snapshot holds no credentials, so none can appear.
//!
//! Stable hooks for tests and scrapers: each proxy row is
//! `<tr data-proxy-id="…">`, with cells `class="state"`, `class="health"`,
//! `class="open"` and `class="failures"`; an empty inventory renders one row
//! `<tr class="empty">`.

use core::fmt::Write as _;

use crate::snapshot::{ProxyRow, Snapshot};

/// The inline stylesheet. No `url(…)`, no `@import`: nothing is fetched.
const STYLE: &str = "\
:root{color-scheme:light;--fg:#1d2430;--muted:#5b6576;--line:#e3e7ee;--bg:#f6f8fb;\
--ok:#1f8a4c;--ok-bg:#e3f5ea;--warn:#9a6200;--warn-bg:#fff1d6;--bad:#b42318;--bad-bg:#fde7e5;\
--off:#4b5563;--off-bg:#eceef2}\
*{box-sizing:border-box}\
body{margin:0;padding:24px 32px;background:var(--bg);color:var(--fg);\
font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Liberation Sans\",Arial,sans-serif}\
h1{font-size:20px;margin:0 0 4px}\
.sub{color:var(--muted);margin:0 0 16px}\
.summary{display:flex;gap:12px;flex-wrap:wrap;margin:0 0 16px;padding:0;list-style:none}\
.summary li{background:#fff;border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px}\
.summary .n{display:block;font-size:22px;font-weight:600}\
.summary .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}\
.summary .alert{border-color:var(--bad);background:var(--bad-bg)}\
.notice{margin:0 0 16px;padding:8px 14px;border-radius:8px;background:var(--bad-bg);color:var(--bad);font-weight:600}\
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line);border-radius:8px;overflow:hidden}\
th,td{padding:8px 12px;text-align:left;border-bottom:1px solid var(--line);vertical-align:middle}\
th{white-space:nowrap;background:#eef1f6;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}\
tr:last-child td{border-bottom:0}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
.id{font-weight:600}\
.url,.fail{font-family:ui-monospace,\"DejaVu Sans Mono\",\"Liberation Mono\",monospace;font-size:13px}\
.url{color:var(--muted);white-space:nowrap}\
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap}\
.s-active{color:var(--ok);background:var(--ok-bg)}\
.s-cooling_down{color:var(--warn);background:var(--warn-bg)}\
.s-ejected{color:var(--bad);background:var(--bad-bg)}\
.s-disabled,.s-other{color:var(--off);background:var(--off-bg)}\
.left{display:block;color:var(--muted);font-size:12px;margin-top:2px}\
.health{white-space:nowrap}\
.pct{display:inline-block;min-width:3.2em;text-align:right;font-weight:600;font-variant-numeric:tabular-nums}\
meter{width:80px;height:8px;margin-left:8px;vertical-align:middle;border:0;border-radius:4px;\
background:none;-webkit-appearance:none;appearance:none}\
meter::-webkit-meter-inner-element{display:block}\
meter::-webkit-meter-bar{height:8px;background:var(--line);border:0;border-radius:4px}\
meter::-webkit-meter-optimum-value{background:var(--ok);border-radius:4px}\
meter::-webkit-meter-suboptimum-value{background:#d08a00;border-radius:4px}\
meter::-webkit-meter-even-less-good-value{background:var(--bad);border-radius:4px}\
meter::-moz-meter-bar{border-radius:4px}\
meter:-moz-meter-optimum::-moz-meter-bar{background:var(--ok)}\
meter:-moz-meter-sub-optimum::-moz-meter-bar{background:#d08a00}\
meter:-moz-meter-sub-sub-optimum::-moz-meter-bar{background:var(--bad)}\
.regions span{white-space:nowrap}.fail{color:var(--bad)}.fail .f{white-space:nowrap}\
.none{color:var(--muted)}\
tr.empty td{text-align:center;color:var(--muted);padding:24px}\
footer{margin-top:12px;color:var(--muted);font-size:12px}";

/// Renders the status page for `snapshot`, refreshing itself every
/// `refresh_seconds` seconds (`0` turns the refresh off).
///
/// The result is a complete HTML5 document. It loads nothing from anywhere
/// and holds no script, so it is safe under a strict
/// Content-Security-Policy (`default-src 'none'; style-src 'unsafe-inline'`).
/// All text from the snapshot is HTML-escaped.
pub fn render_status_page(snapshot: &Snapshot, refresh_seconds: u32) -> String {
    render(snapshot, refresh_seconds)
}

/// Renders the status page; see [`render_status_page`].
pub(crate) fn render(snapshot: &Snapshot, refresh_seconds: u32) -> String {
    let mut out = String::with_capacity(4096 + snapshot.proxies.len() * 768);
    // Writing into a `String` cannot fail; `fmt::Error` only comes from the
    // `Display` impls, and ours never return it.
    let _ = write_page(&mut out, snapshot, refresh_seconds);
    out
}

fn write_page(out: &mut String, snapshot: &Snapshot, refresh_seconds: u32) -> core::fmt::Result {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<meta name=\"referrer\" content=\"no-referrer\">\n");
    if refresh_seconds > 0 {
        writeln!(
            out,
            "<meta http-equiv=\"refresh\" content=\"{refresh_seconds}\">"
        )?;
    }
    out.push_str("<title>proxy-delegate service</title>\n<style>");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n<h1>proxy-delegate service</h1>\n");
    if refresh_seconds > 0 {
        writeln!(
            out,
            "<p class=\"sub\">Proxy pool status. This page refreshes every {refresh_seconds}&nbsp;s.</p>"
        )?;
    } else {
        out.push_str("<p class=\"sub\">Proxy pool status.</p>\n");
    }

    write_summary(out, snapshot)?;

    out.push_str(
        "<table>\n<thead><tr><th>Proxy</th><th>Regions</th><th>State</th><th>Health</th>\
         <th class=\"num\">Success</th><th class=\"num\">Latency</th><th class=\"num\">Open / max</th>\
         <th class=\"num\">Ejections</th><th>Recent failures</th></tr></thead>\n<tbody>\n",
    );
    if snapshot.proxies.is_empty() {
        out.push_str(
            "<tr class=\"empty\"><td colspan=\"9\">No proxies in the inventory: \
             add some to the service configuration.</td></tr>\n",
        );
    }
    for row in &snapshot.proxies {
        write_row(out, row)?;
    }
    out.push_str("</tbody>\n</table>\n");
    out.push_str(
        "<footer>Health = success rate &times; latency factor. \
         Failures are counted over the recent window. \
         The same data as JSON: GET /api/v1/proxies.</footer>\n</body>\n</html>\n",
    );
    Ok(())
}

fn write_summary(out: &mut String, snapshot: &Snapshot) -> core::fmt::Result {
    let s = &snapshot.summary;
    let plural = if s.proxies == 1 { "proxy" } else { "proxies" };
    out.push_str("<ul class=\"summary\">\n");
    writeln!(
        out,
        "<li><span class=\"n\" id=\"sum-proxies\">{}</span><span class=\"l\">{plural}</span></li>",
        s.proxies
    )?;
    let none_available = s.available == 0 && s.proxies > 0;
    writeln!(
        out,
        "<li{}><span class=\"n\" id=\"sum-available\">{}</span><span class=\"l\">available</span></li>",
        if none_available {
            " class=\"alert\""
        } else {
            ""
        },
        s.available
    )?;
    writeln!(
        out,
        "<li{}><span class=\"n\" id=\"sum-ejected\">{}</span><span class=\"l\">ejected</span></li>",
        if s.ejected > 0 {
            " class=\"alert\""
        } else {
            ""
        },
        s.ejected
    )?;
    writeln!(
        out,
        "<li><span class=\"n\" id=\"sum-max-ejected\">{}</span><span class=\"l\">max ejected</span></li>",
        s.max_ejected
    )?;
    out.push_str("</ul>\n");
    if none_available {
        out.push_str(
            "<p class=\"notice\">No proxy is available: requests get the service's fallback policy.</p>\n",
        );
    } else if s.ejected > 0 && s.ejected >= s.max_ejected {
        out.push_str(
            "<p class=\"notice\">The ejection limit is reached: further failing proxies stay in rotation.</p>\n",
        );
    }
    Ok(())
}

fn write_row(out: &mut String, row: &ProxyRow) -> core::fmt::Result {
    out.push_str("<tr data-proxy-id=\"");
    escape_into(out, &row.id);
    out.push_str("\">\n");

    // Proxy: id and credential-free URL.
    out.push_str("<td><span class=\"id\">");
    escape_into(out, &row.id);
    out.push_str("</span><br><span class=\"url\">");
    escape_into(out, &row.url);
    out.push_str("</span></td>\n");

    // Regions.
    out.push_str("<td class=\"regions\">");
    if row.regions.is_empty() {
        out.push_str("<span class=\"none\">any</span>");
    } else {
        for (i, region) in row.regions.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str("<span>");
            escape_into(out, region);
            out.push_str("</span>");
        }
    }
    out.push_str("</td>\n");

    // State badge.
    let (class, words) = state_badge(row.state);
    out.push_str("<td class=\"state\"><span class=\"badge s-");
    out.push_str(class);
    out.push_str("\">");
    match words {
        Some(words) => out.push_str(words),
        None => escape_into(out, &row.state.replace('_', " ")),
    }
    out.push_str("</span>");
    if let Some(secs) = row.ejected_for_seconds {
        write!(out, "<span class=\"left\">back in {}</span>", Secs(secs))?;
    }
    out.push_str("</td>\n");

    // Health: percentage and a small bar; the meter colours itself green
    // from 80 %, amber from 50 %, red below (`low`/`high`/`optimum`).
    out.push_str("<td class=\"health\">");
    match percent(row.health_score) {
        Some(pct) => {
            write!(
                out,
                "<span class=\"pct\">{pct}%</span><meter min=\"0\" max=\"100\" low=\"50\" \
                 high=\"80\" optimum=\"100\" value=\"{pct}\" aria-hidden=\"true\"></meter>"
            )?;
        }
        None => out.push_str("<span class=\"pct none\">n/a</span>"),
    }
    out.push_str("</td>\n");

    // Success rate.
    out.push_str("<td class=\"success num\">");
    match percent(row.success_rate) {
        Some(pct) => write!(out, "{pct}%")?,
        None => out.push_str("<span class=\"none\">n/a</span>"),
    }
    out.push_str("</td>\n");

    // Latency.
    out.push_str("<td class=\"latency num\">");
    match row.latency_ms.filter(|l| l.is_finite() && *l >= 0.0) {
        Some(ms) if ms < 10.0 => write!(out, "{ms:.1}&nbsp;ms")?,
        Some(ms) => write!(out, "{ms:.0}&nbsp;ms")?,
        None => out.push_str("<span class=\"none\">&mdash;</span>"),
    }
    out.push_str("</td>\n");

    // Open / max connections.
    write!(out, "<td class=\"open num\">{} / ", row.open_connections)?;
    match row.max_connections {
        Some(max) => write!(out, "{max}")?,
        None => out.push_str("<span class=\"none\" title=\"no connection limit\">&infin;</span>"),
    }
    out.push_str("</td>\n");

    // Ejections.
    writeln!(out, "<td class=\"ejections num\">{}</td>", row.ejections)?;

    // Recent failures by category.
    let failures: Vec<_> = row.recent_failures.iter().filter(|f| f.count > 0).collect();
    if failures.is_empty() {
        out.push_str("<td class=\"failures\"><span class=\"none\">none</span></td>\n");
    } else {
        out.push_str("<td class=\"failures\"><span class=\"fail\">");
        for (i, f) in failures.iter().enumerate() {
            if i > 0 {
                out.push_str(" &middot; ");
            }
            out.push_str("<span class=\"f\">");
            escape_into(out, f.category);
            write!(out, " {}</span>", f.count)?;
        }
        out.push_str("</span></td>\n");
    }

    out.push_str("</tr>\n");
    Ok(())
}

/// The CSS class suffix and the human words for a state; `None` words for a
/// state this page does not know (rendered escaped, underscores as spaces).
fn state_badge(state: &str) -> (&'static str, Option<&'static str>) {
    match state {
        "active" => ("active", Some("active")),
        "cooling_down" => ("cooling_down", Some("cooling down")),
        "ejected" => ("ejected", Some("ejected")),
        "disabled" => ("disabled", Some("disabled")),
        _ => ("other", None),
    }
}

/// A 0–1 ratio as a whole percentage clamped to 0–100; `None` if not a number.
fn percent(ratio: f32) -> Option<u8> {
    if !ratio.is_finite() {
        return None;
    }
    let pct = (ratio.clamp(0.0, 1.0) * 100.0).round();
    // `pct` is a whole number within 0..=100 here, so the cast is exact.
    Some(pct as u8)
}

/// Seconds as a short human duration (`42 s`, `3 min 5 s`, `2 h 10 min`).
struct Secs(u64);

impl core::fmt::Display for Secs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.0;
        if s < 60 {
            write!(f, "{s}&nbsp;s")
        } else if s < 3600 {
            write!(f, "{}&nbsp;min {}&nbsp;s", s / 60, s % 60)
        } else {
            write!(f, "{}&nbsp;h {}&nbsp;min", s / 3600, (s % 3600) / 60)
        }
    }
}

/// Appends `text` to `out` with `&`, `<`, `>`, `"` and `'` escaped, safe in
/// element content and in double- or single-quoted attribute values.
fn escape_into(out: &mut String, text: &str) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{FailureCount, PoolSummary};

    fn row(id: &str, state: &'static str) -> ProxyRow {
        ProxyRow {
            id: id.to_owned(),
            url: format!("http://10.0.0.{}:3128", id.len()),
            regions: vec!["eu-west".to_owned(), "us-east".to_owned()],
            state,
            health_score: 0.873,
            success_rate: 0.95,
            latency_ms: Some(123.4),
            open_connections: 3,
            max_connections: Some(10),
            weight: 1,
            ejections: 0,
            ejected_for_seconds: None,
            recent_failures: Vec::new(),
        }
    }

    fn snapshot(proxies: Vec<ProxyRow>) -> Snapshot {
        let n = u32::try_from(proxies.len()).unwrap();
        Snapshot {
            summary: PoolSummary {
                proxies: n,
                available: n,
                ejected: 0,
                max_ejected: 1,
            },
            proxies,
        }
    }

    /// The `<tr data-proxy-id="id">…</tr>` of one proxy.
    fn row_html<'a>(page: &'a str, escaped_id: &str) -> &'a str {
        let start = page
            .find(&format!("<tr data-proxy-id=\"{escaped_id}\">"))
            .unwrap_or_else(|| panic!("no row for {escaped_id} in:\n{page}"));
        let end = start + page[start..].find("</tr>").expect("row is closed");
        &page[start..end]
    }

    /// The text content of the first `<td class="{class}…">` in `html`, tags stripped.
    fn cell_text(html: &str, class: &str) -> String {
        let open = format!("<td class=\"{class}");
        let start = html
            .find(&open)
            .unwrap_or_else(|| panic!("no cell {class} in {html}"));
        let body_start = start + html[start..].find('>').unwrap() + 1;
        let body_end = body_start + html[body_start..].find("</td>").unwrap();
        let mut text = String::new();
        let mut in_tag = false;
        for c in html[body_start..body_end].chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text
    }

    #[test]
    fn escape_covers_the_five_characters() {
        let mut out = String::new();
        escape_into(&mut out, "a&b<c>d\"e'f");
        assert_eq!(out, "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() {
        let mut r = row("<script>alert(\"x\")</script>", "active");
        r.url = "http://<img>:1".to_owned();
        r.regions = vec!["eu'\"><b>".to_owned()];
        let page = render(&snapshot(vec![r]), 5);
        assert!(!page.contains("<script"), "raw <script> in page:\n{page}");
        assert!(!page.contains("<img"), "raw <img> in page");
        assert!(!page.contains("<b>"), "raw <b> in page");
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;";
        // In the data attribute and in the id cell.
        let html = row_html(&page, escaped);
        assert!(html.contains(&format!("<span class=\"id\">{escaped}</span>")));
        assert!(html.contains("http://&lt;img&gt;:1"));
        assert!(html.contains("eu&#39;&quot;&gt;&lt;b&gt;"));
    }

    #[test]
    fn every_state_renders_its_words_and_badge() {
        let cases = [
            ("a", "active", "active", "s-active"),
            ("c", "cooling_down", "cooling down", "s-cooling_down"),
            ("e", "ejected", "ejected", "s-ejected"),
            ("d", "disabled", "disabled", "s-disabled"),
            ("u", "quarantined_x", "quarantined x", "s-other"),
        ];
        let rows = cases
            .iter()
            .map(|(id, state, _, _)| row(id, state))
            .collect();
        let page = render(&snapshot(rows), 5);
        for (id, _, words, class) in cases {
            let html = row_html(&page, id);
            assert_eq!(cell_text(html, "state"), words, "state of {id}");
            assert!(
                html.contains(&format!("badge {class}")),
                "badge class of {id}: {html}"
            );
        }
    }

    #[test]
    fn ejected_row_shows_time_left() {
        let mut r = row("e1", "ejected");
        r.ejected_for_seconds = Some(125);
        r.ejections = 4;
        let page = render(&snapshot(vec![r]), 5);
        let html = row_html(&page, "e1");
        assert_eq!(
            cell_text(html, "state"),
            "ejectedback in 2&nbsp;min 5&nbsp;s"
        );
        assert_eq!(cell_text(html, "ejections"), "4");
    }

    #[test]
    fn health_open_and_numbers_render() {
        let mut r = row("p1", "active");
        r.health_score = 0.873;
        r.open_connections = 7;
        r.max_connections = Some(20);
        let mut unlimited = row("p2", "active");
        unlimited.health_score = 0.25;
        unlimited.max_connections = None;
        unlimited.latency_ms = None;
        unlimited.success_rate = f32::NAN;
        let page = render(&snapshot(vec![r, unlimited]), 5);

        let p1 = row_html(&page, "p1");
        assert_eq!(cell_text(p1, "health"), "87%");
        assert!(p1.contains("value=\"87\""), "{p1}");
        assert_eq!(cell_text(p1, "open"), "7 / 20");
        assert_eq!(cell_text(p1, "success"), "95%");
        assert_eq!(cell_text(p1, "latency"), "123&nbsp;ms");

        let p2 = row_html(&page, "p2");
        assert_eq!(cell_text(p2, "health"), "25%");
        assert!(p2.contains("value=\"25\""), "{p2}");
        assert_eq!(cell_text(p2, "open"), "3 / &infin;");
        assert_eq!(cell_text(p2, "success"), "n/a");
        assert_eq!(cell_text(p2, "latency"), "&mdash;");
    }

    #[test]
    fn health_out_of_range_is_clamped() {
        assert_eq!(percent(1.7), Some(100));
        assert_eq!(percent(-0.2), Some(0));
        assert_eq!(percent(f32::INFINITY), None);
        assert_eq!(percent(0.005), Some(1));
    }

    #[test]
    fn failures_render_by_category_or_none() {
        let mut failing = row("f1", "cooling_down");
        failing.recent_failures = vec![
            FailureCount {
                category: "proxy_connect",
                count: 3,
            },
            FailureCount {
                category: "timeout",
                count: 1,
            },
        ];
        let healthy = row("ok1", "active");
        let page = render(&snapshot(vec![failing, healthy]), 5);
        assert_eq!(
            cell_text(row_html(&page, "f1"), "failures"),
            "proxy_connect 3 &middot; timeout 1"
        );
        assert_eq!(cell_text(row_html(&page, "ok1"), "failures"), "none");
    }

    #[test]
    fn empty_inventory_shows_no_proxies_row() {
        let page = render(&snapshot(Vec::new()), 5);
        assert!(page.contains("<tr class=\"empty\">"));
        assert!(page.contains("No proxies in the inventory"));
        assert!(!page.contains("data-proxy-id"));
        assert!(page.contains("<span class=\"n\" id=\"sum-proxies\">0</span>"));
    }

    #[test]
    fn summary_and_document_frame() {
        let mut s = snapshot(vec![row("a", "active"), row("b", "ejected")]);
        s.summary = PoolSummary {
            proxies: 2,
            available: 1,
            ejected: 1,
            max_ejected: 1,
        };
        let page = render(&s, 7);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
        assert!(page.contains("<title>proxy-delegate service</title>"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"7\">"));
        assert!(page.contains("id=\"sum-proxies\">2<"));
        assert!(page.contains("id=\"sum-available\">1<"));
        assert!(page.contains("id=\"sum-ejected\">1<"));
        assert!(page.contains("id=\"sum-max-ejected\">1<"));
        assert!(page.contains("ejection limit is reached"));
        assert!(page.trim_end().ends_with("</html>"));

        let no_refresh = render(&s, 0);
        assert!(!no_refresh.contains("http-equiv"));
    }

    #[test]
    fn no_available_proxy_is_called_out() {
        let mut s = snapshot(vec![row("a", "ejected")]);
        s.summary.available = 0;
        let page = render(&s, 5);
        assert!(page.contains("No proxy is available"));
    }

    #[test]
    fn page_loads_nothing_and_runs_nothing() {
        let mut a = row("a", "active");
        a.url = "https://proxy.example:8443".to_owned();
        let mut b = row("b", "active");
        b.url = "socks5://10.0.0.2:1080".to_owned();
        let page = render(&snapshot(vec![a, b]), 5);
        let lower = page.to_ascii_lowercase();
        for needle in [
            "src=", "href=", "<script", "<link", "<img", "<iframe", "<object", "url(", "@import",
            "style=",
        ] {
            assert!(!lower.contains(needle), "{needle} in the page");
        }
        // No event-handler attribute (onload=, onclick=, …).
        assert!(
            !lower
                .split(|c: char| c.is_whitespace())
                .any(|w| w.starts_with("on") && w.contains('=')),
            "an on*= attribute in the page"
        );
        // The only http(s):// text is the proxy URLs shown as text.
        let rest = lower
            .replace("https://proxy.example:8443", "")
            .replace("socks5://10.0.0.2:1080", "");
        assert!(
            !rest.contains("http://") && !rest.contains("https://"),
            "{rest}"
        );
        assert!(
            !rest.contains("//"),
            "a protocol-relative reference in the page"
        );
    }
}
