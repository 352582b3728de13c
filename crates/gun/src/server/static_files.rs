//! [`RelayOptions::static_dir`](super::RelayOptions::static_dir) (gun-relay's
//! `--static DIR`): serves the files of one folder over plain HTTP (GET and
//! HEAD), on the same port as `/gun`.
//!
//! Request paths are percent-decoded, then refused (404) if any segment is
//! `..` or `.`, or holds `\`, a NUL or a drive colon; the file found is
//! canonicalized and must still lie inside the (canonicalized) root, so
//! symlinks pointing out of the folder are not followed out of it.

use std::path::{Path, PathBuf};

use gun_net_ws::HttpResponse;

use super::ServerError;

/// Largest file served (bigger files get a 404, as the server holds responses in memory).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// A folder served over HTTP.
#[derive(Debug, Clone)]
pub(crate) struct StaticDir {
    root: PathBuf,
}

impl StaticDir {
    /// Serves `dir`, which must exist and be a directory.
    pub(crate) fn new(dir: &Path) -> Result<Self, ServerError> {
        let root = dir.canonicalize().map_err(|e| ServerError::StaticDir {
            dir: dir.to_owned(),
            source: Some(e),
        })?;
        if !root.is_dir() {
            return Err(ServerError::StaticDir {
                dir: dir.to_owned(),
                source: None,
            });
        }
        Ok(Self { root })
    }

    /// The file a request path (not percent-decoded) names, if it is one
    /// inside the root: directories map to their `index.html`.
    pub(crate) fn resolve(&self, raw_path: &str) -> Option<PathBuf> {
        let decoded = percent_decode(raw_path)?;
        let rel = decoded.strip_prefix('/')?;
        let mut path = self.root.clone();
        for seg in rel.split('/') {
            if seg.is_empty() {
                continue;
            }
            if seg == "."
                || seg == ".."
                || seg.contains('\\')
                || seg.contains('\0')
                || seg.contains(':')
            {
                return None;
            }
            path.push(seg);
        }
        let mut real = path.canonicalize().ok()?;
        if real.is_dir() {
            real = real.join("index.html").canonicalize().ok()?;
        }
        if !real.starts_with(&self.root) || !real.is_file() {
            return None;
        }
        Some(real)
    }

    /// Answers GET or HEAD of `raw_path`: the file, or 404.
    pub(crate) fn serve(&self, raw_path: &str) -> HttpResponse {
        let Some(file) = self.resolve(raw_path) else {
            return HttpResponse::not_found();
        };
        match std::fs::metadata(&file) {
            Ok(m) if m.len() <= MAX_FILE_BYTES => {}
            _ => return HttpResponse::not_found(),
        }
        match std::fs::read(&file) {
            Ok(body) => HttpResponse::new(200)
                .with_body(content_type(&file), body)
                .with_header("Cache-Control", "no-cache")
                .with_header("Access-Control-Allow-Origin", "*"),
            Err(_) => HttpResponse::not_found(),
        }
    }
}

/// [`RelayOptions::gun_js_dir`](super::RelayOptions::gun_js_dir) (gun-relay's
/// `--serve-gun-js DIR`): Gun.js's browser files from an npm install of the
/// `gun` package, at the paths a Gun.js relay serves them.
///
/// Mounted only for `/NAME.js` (a top-level script: `gun.js`, `sea.js`,
/// `gun.min.js`, ...), `/lib/...`, and `/gun/PATH` (any file of the package,
/// as Gun.js's `lib/serve.js` does); the files are resolved by a
/// [`StaticDir`] on DIR, with its traversal checks.
#[derive(Debug, Clone)]
pub(crate) struct GunJsDir {
    dir: StaticDir,
}

impl GunJsDir {
    /// Serves `dir`, which must be a directory holding `gun.js`.
    pub(crate) fn new(dir: &Path) -> Result<Self, ServerError> {
        let failed = |message: String| ServerError::GunJsDir {
            dir: dir.to_owned(),
            message,
        };
        let root = dir.canonicalize().map_err(|e| failed(e.to_string()))?;
        if !root.is_dir() {
            return Err(failed("not a directory".into()));
        }
        if !root.join("gun.js").is_file() {
            return Err(failed(
                "no gun.js in it (point it at an npm install of gun, e.g. ./node_modules/gun)"
                    .into(),
            ));
        }
        Ok(Self {
            dir: StaticDir { root },
        })
    }

    /// The path inside DIR that a request path maps to, if it is one of the
    /// mounted paths.
    fn mounted(raw_path: &str) -> Option<&str> {
        // `/gun/x` is DIR/x.
        if let Some(rest) = raw_path.strip_prefix("/gun")
            && rest.starts_with('/')
        {
            return Some(rest);
        }
        if raw_path.starts_with("/lib/") {
            return Some(raw_path);
        }
        let name = raw_path.strip_prefix('/')?;
        (!name.contains('/') && name.len() > 3 && name.ends_with(".js")).then_some(raw_path)
    }

    /// Answers GET or HEAD of `raw_path` if it is a mounted path naming a
    /// file of DIR; `None` otherwise (the request goes on to the other pages).
    pub(crate) fn serve(&self, raw_path: &str) -> Option<HttpResponse> {
        let path = Self::mounted(raw_path)?;
        self.dir.resolve(path)?;
        Some(self.dir.serve(path))
    }
}

/// The `Content-Type` of a file, from its extension.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Decodes `%XX` escapes; `None` for bad escapes or text that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn site() -> (tempfile::TempDir, StaticDir) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("site");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(root.join("sub/index.html"), "<h1>sub</h1>").unwrap();
        std::fs::write(root.join("app.js"), "1").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "secret").unwrap();
        let dir = StaticDir::new(&root).unwrap();
        (tmp, dir)
    }

    #[test]
    fn resolves_files_and_indexes() {
        let (_tmp, d) = site();
        assert!(d.resolve("/").unwrap().ends_with("site/index.html"));
        assert!(d.resolve("/sub").unwrap().ends_with("sub/index.html"));
        assert!(d.resolve("/sub/").unwrap().ends_with("sub/index.html"));
        assert!(d.resolve("/app.js").unwrap().ends_with("app.js"));
        assert!(d.resolve("/%61pp.js").unwrap().ends_with("app.js"));
        assert!(d.resolve("/missing").is_none());
    }

    #[test]
    fn refuses_traversal() {
        let (_tmp, d) = site();
        for p in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/%2e%2e%2fsecret.txt",
            "/..%2fsecret.txt",
            "/sub/..%5c..%5csecret.txt",
            "//etc/passwd",
            "/etc/passwd",
            "secret.txt",
            "/%00",
            "/%zz",
            "/./app.js",
        ] {
            assert!(d.resolve(p).is_none(), "{p} resolved");
        }
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symlinks_out_of_the_root() {
        let (tmp, d) = site();
        let root = tmp.path().join("site");
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("app.js"), root.join("inside.js")).unwrap();
        assert!(d.resolve("/link.txt").is_none());
        assert!(d.resolve("/up/secret.txt").is_none());
        assert!(d.resolve("/inside.js").is_some());
    }

    #[test]
    fn gun_js_mounts() {
        for (p, m) in [
            ("/gun.js", Some("/gun.js")),
            ("/sea.js", Some("/sea.js")),
            ("/lib/webrtc.js", Some("/lib/webrtc.js")),
            ("/gun/sea.js", Some("/sea.js")),
            ("/gun/lib/radix.js", Some("/lib/radix.js")),
            ("/gun", None),
            ("/gunx/a.js", None),
            ("/app/x.js", None),
            ("/index.html", None),
            ("/.js", None),
            ("/", None),
        ] {
            assert_eq!(GunJsDir::mounted(p), m, "{p}");
        }
        let tmp = tempfile::tempdir().unwrap();
        assert!(GunJsDir::new(tmp.path()).is_err(), "no gun.js");
        std::fs::create_dir_all(tmp.path().join("lib")).unwrap();
        std::fs::write(tmp.path().join("gun.js"), "gun").unwrap();
        std::fs::write(tmp.path().join("lib/x.js"), "x").unwrap();
        let g = GunJsDir::new(tmp.path()).unwrap();
        assert_eq!(g.serve("/gun.js").unwrap().status, 200);
        assert_eq!(g.serve("/gun/lib/x.js").unwrap().status, 200);
        assert!(g.serve("/sea.js").is_none(), "missing files fall through");
        assert!(g.serve("/lib/../gun.js").is_none());
    }

    #[test]
    fn content_types() {
        for (f, t) in [
            ("a.html", "text/html; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.png", "image/png"),
            ("a.svg", "image/svg+xml"),
            ("a.ico", "image/x-icon"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("a.wasm", "application/wasm"),
            ("A.HTML", "text/html; charset=utf-8"),
            ("a", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(f)), t, "{f}");
        }
    }
}
