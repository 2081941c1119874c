// Package e2e holds end-to-end tests: the web app (package webapp) driven by
// a real headless Chromium against a real server (package server) on
// loopback. The tests live in *_test.go files; this package has no code.
//
// They need Debian's chromium at /usr/bin/chromium. Without it they skip,
// except under CI (env CI set), where they fail. Screenshots of each main
// screen are written to $PRYVSYNC_SCREENSHOTS, or to a temporary directory
// when it is unset; never into the repository.
package e2e
