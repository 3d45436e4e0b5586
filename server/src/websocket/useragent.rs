//! OS and browser families from a User-Agent, for the online list.

/// `(os, browser)` for common families; `"Other"` when unknown.
pub fn parse(ua: &str) -> (String, String) {
    (os(ua).to_string(), browser(ua).to_string())
}

fn os(ua: &str) -> &'static str {
    if ua.contains("Windows NT 10.0") {
        "Windows 10/11"
    } else if ua.contains("Windows NT 6.3") {
        "Windows 8.1"
    } else if ua.contains("Windows NT 6.2") {
        "Windows 8"
    } else if ua.contains("Windows NT 6.1") {
        "Windows 7"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iPod") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Linux") || ua.contains("X11") {
        "Linux"
    } else {
        "Other"
    }
}

fn browser(ua: &str) -> &'static str {
    // Order matters: Edge and WeChat also claim Chrome and Safari.
    if ua.contains("MicroMessenger") {
        "WeChat"
    } else if ua.contains("Edg/") || ua.contains("Edge/") || ua.contains("EdgA/") {
        "Edge"
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        "Opera"
    } else if ua.contains("Firefox/") || ua.contains("FxiOS/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("CriOS/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        "Other"
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn common_families() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                "Windows 10/11",
                "Chrome",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0",
                "Windows 10/11",
                "Edge",
            ),
            (
                "Mozilla/5.0 (Windows NT 6.1; rv:109.0) Gecko/20100101 Firefox/115.0",
                "Windows 7",
                "Firefox",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
                "macOS",
                "Safari",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.40",
                "iOS",
                "WeChat",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
                "Android",
                "Chrome",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
                "Linux",
                "Firefox",
            ),
            ("curl/8.0", "Other", "Other"),
        ];
        for (ua, os, br) in cases {
            assert_eq!(parse(ua), (os.to_string(), br.to_string()), "{ua}");
        }
    }
}
