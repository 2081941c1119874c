// Package webapp holds the browser app served under /app/, embedded in the binary.
//
// The app is plain HTML, CSS and JavaScript modules with no build step. Its
// invariants, checked by embed_test.go:
//
//   - no third-party script or resource is loaded at run time: every asset is
//     referenced by a relative URL ("./app.js") and the page's
//     Content-Security-Policy allows scripts from 'self' only;
//   - an access token lives only in the URL fragment of a share link
//     (/app/#/{username}/{token}), which browsers never send to a server, and
//     in the Authorization header of API calls; the notifications websocket,
//     where browsers cannot set headers, is the one call that passes it as the
//     `auth` query parameter; attachments are fetched with the header and shown
//     through blob: URLs;
//   - the owner's session id and personal token are kept in sessionStorage,
//     never in a URL;
//   - text from the API is inserted as text, never parsed as HTML.
//
// Handler (handler.go) serves Files under /app/ with matching security headers
// and a JavaScript content type for the modules.
package webapp

import "embed"

// Files holds index.html, the JavaScript modules and the stylesheet.
//
//go:embed index.html *.js *.css
var Files embed.FS
