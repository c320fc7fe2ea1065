// Package downloadbench compares Updraft's artifact download path with nginx
// serving the same file from the same disk in the same run.
//
// The Updraft side is the real stack: a signed URL checked by
// internal/signedurl, the blob opened from internal/blob's disk store, and
// the body sent by internal/download (sendfile). The nginx side is a private
// nginx (Debian package, sendfile on) started on a free loopback port with
// its own configuration under a temporary prefix. Both are downloaded by the
// same keep-alive Go client that discards the bytes.
//
// Run it with
//
//	go test -run '^$' -bench . -benchtime 10x ./bench/download
//
// It reports updraft-MB/s, nginx-MB/s and their ratio (goal: at least 0.8),
// and before timing checks that a Range request from the middle returns
// exactly the remaining bytes on both servers. Without nginx it skips with a
// message; with UPDRAFT_REQUIRE_SERVICES=1 it fails instead. Install nginx
// with scripts/install-nginx.sh.
package downloadbench
