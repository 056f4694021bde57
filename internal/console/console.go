// Package console holds the files of audex's web console (docs/api.md,
// "Console"): one HTML page, its script and its style sheet, and the chart
// library uPlot (committed built by scripts/vendor-uplot.sh), served by
// internal/api under /console/. The page calls the API's own routes with
// the console's session. It imports nothing of audex.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"path"
)

//go:embed web
var files embed.FS

// Asset is one file of the console.
type Asset struct {
	Body        []byte
	ContentType string
	// ETag is a strong validator of Body.
	ETag string
}

// Page is the console's HTML page, the answer to every path of the
// console that is not an asset (the page routes itself).
var Page Asset

// Assets are the files the page loads, by name (as in /console/assets/NAME).
var Assets = map[string]Asset{}

func init() {
	entries, err := fs.ReadDir(files, "web")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		body, err := fs.ReadFile(files, path.Join("web", e.Name()))
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(body)
		a := Asset{Body: body, ContentType: mime.TypeByExtension(path.Ext(e.Name())),
			ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		if e.Name() == "index.html" {
			Page = a
			continue
		}
		Assets[e.Name()] = a
	}
}
