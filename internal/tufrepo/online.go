package tufrepo

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Online holds the server's online snapshot and timestamp signers and how
// long what they sign stays valid. The server re-signs each role when less
// than half of its lifetime remains, so a device that checks in at least
// every half lifetime never sees expired metadata while the server is up,
// and a frozen server is detected within one lifetime.
type Online struct {
	Snapshot          []Signer
	Timestamp         []Signer
	SnapshotLifetime  time.Duration // default 7 days
	TimestampLifetime time.Duration // default 1 day
}

// Default lifetimes of online metadata.
const (
	DefaultSnapshotLifetime  = 7 * 24 * time.Hour
	DefaultTimestampLifetime = 24 * time.Hour
)

func (o Online) withDefaults() Online {
	if o.SnapshotLifetime <= 0 {
		o.SnapshotLifetime = DefaultSnapshotLifetime
	}
	if o.TimestampLifetime <= 0 {
		o.TimestampLifetime = DefaultTimestampLifetime
	}
	return o
}

// NextSnapshot returns unsigned snapshot metadata: version prev+1 (1 when
// prev is nil) listing every targets role in roles (role name → the exact
// bytes served) with its version, length and SHA-256.
func NextSnapshot(prev []byte, roles map[string][]byte, expires time.Time) ([]byte, error) {
	m := metadata.Snapshot(expiry(expires))
	if prev != nil {
		old, err := parse[metadata.SnapshotType](prev)
		if err != nil {
			return nil, fmt.Errorf("next snapshot: %w", err)
		}
		m.Signed.Version = old.Signed.Version + 1
	}
	m.Signed.Meta = map[string]*metadata.MetaFiles{}
	names := make([]string, 0, len(roles))
	for name := range roles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		info, err := Describe(roles[name])
		if err != nil {
			return nil, fmt.Errorf("next snapshot: role %s: %w", name, err)
		}
		if info.Type != metadata.TARGETS {
			return nil, fmt.Errorf("next snapshot: role %s is %s metadata", name, info.Type)
		}
		m.Signed.Meta[name+".json"] = metaFile(info.Version, roles[name])
	}
	return encode(m)
}

// NextTimestamp returns unsigned timestamp metadata: version prev+1 (1
// when prev is nil) pointing at snapshot by version, length and SHA-256.
func NextTimestamp(prev []byte, snapshot []byte, expires time.Time) ([]byte, error) {
	m := metadata.Timestamp(expiry(expires))
	if prev != nil {
		old, err := parse[metadata.TimestampType](prev)
		if err != nil {
			return nil, fmt.Errorf("next timestamp: %w", err)
		}
		m.Signed.Version = old.Signed.Version + 1
	}
	info, err := Describe(snapshot)
	if err != nil {
		return nil, fmt.Errorf("next timestamp: snapshot: %w", err)
	}
	if info.Type != metadata.SNAPSHOT {
		return nil, fmt.Errorf("next timestamp: %s metadata given as snapshot", info.Type)
	}
	m.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(info.Version, snapshot)}
	return encode(m)
}

func metaFile(version int64, b []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(b)
	return &metadata.MetaFiles{Version: version, Length: int64(len(b)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}
