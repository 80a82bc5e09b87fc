// Package version reports the build's version, set at link time:
// go build -ldflags "-X hazgate/internal/version.Version=v1.2.3".
package version

// Version is overwritten by the linker for release builds.
var Version = "dev"
