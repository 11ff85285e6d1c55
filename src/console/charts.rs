//! Server-rendered SVG charts: horizontal bars, each labelled with its name and value in text
//! (colour is never the only signal), coloured by CSS classes of the served stylesheet (no
//! inline style, which the CSP forbids).

use std::fmt::Write;

/// One bar: its label, its value, what is written after it, and its CSS class.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
    pub class: &'static str,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A bar chart of `bars` against `max` (the largest value when `None`), with a title for
/// screen readers.
pub fn bars(title: &str, bars: &[Bar], max: Option<f64>) -> String {
    const ROW: usize = 34;
    const LABEL: usize = 64;
    const WIDTH: usize = 320;
    const TEXT: usize = 140;
    let top = max.unwrap_or_else(|| bars.iter().map(|b| b.value).fold(0.0, f64::max)).max(1.0);
    let height = ROW * bars.len().max(1) + 6;
    let total = LABEL + WIDTH + TEXT;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" viewBox="0 0 {total} {height}" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
        escape(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = i * ROW + 4;
        let w = ((b.value.max(0.0) / top) * WIDTH as f64).round() as usize;
        let _ = write!(
            svg,
            r#"<text class="chart-label" x="0" y="{ty}">{label}</text><rect class="chart-track" x="{LABEL}" y="{y}" width="{WIDTH}" height="24" rx="4"/><rect class="bar {class}" x="{LABEL}" y="{y}" width="{w}" height="24" rx="4"/><text class="chart-value" x="{tx}" y="{ty}">{text}</text>"#,
            ty = y + 17,
            label = escape(&b.label),
            class = b.class,
            tx = LABEL + WIDTH + 8,
            text = escape(&b.text),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_scaled_labelled_and_escaped() {
        let svg = bars(
            "住户<按颜色>",
            &[
                Bar { label: "红灯".into(), value: 5.0, text: "5 户".into(), class: "red" },
                Bar { label: "绿灯".into(), value: 10.0, text: "10 户".into(), class: "green" },
            ],
            None,
        );
        assert!(svg.contains("<title>住户&lt;按颜色&gt;</title>"));
        assert!(svg.contains(r#"class="bar red" x="64" y="4" width="160""#), "{svg}");
        assert!(svg.contains(r#"class="bar green" x="64" y="38" width="320""#), "{svg}");
        assert!(svg.contains(">5 户<") && svg.contains(">红灯<"));
        assert!(!svg.contains("style="));
    }
}
