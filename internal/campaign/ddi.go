package campaign

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
)

// Artifact suitability for DDI (hawkBit) targets: their clients install
// only some artifact shapes (docs/hawkbit-compat.md).

// checkDDI refuses a campaign whose DDI (hawkBit) targets would get no
// artifact their clients can install. The DDI API serves a device the
// release's artifacts of its device type and hardware revision (or any
// revision), deltas left out; one of them must suit a client.
func checkDDI(ctx context.Context, st Reader, tenant string, s Spec, rel store.Release, pv *Preview) error {
	src := `protocol == "` + string(store.ProtocolDDI) + `"`
	if strings.TrimSpace(s.Selector) != "" {
		src = "(" + s.Selector + ") and " + src
	}
	f, err := filter.Parse(src)
	if err != nil {
		return nil // the selector's own error is reported by Validate
	}
	hw, err := st.HardwareOf(ctx, tenant, f)
	if err != nil {
		return err
	}
	keys := make([][2]string, 0, len(hw))
	for k := range hw {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	for _, k := range keys {
		if !SuitsDDI(ddiArtifacts(rel, k[0], k[1])) {
			pv.Problems.add("release", "%d targeted DDI (hawkBit) devices are %s rev %q, for which release %s has no artifact a DDI client can install "+
				"(an .swu of type swu, a single rauc-bundle, or a single artifact with component bApp)", hw[k], k[0], k[1], rel.Version)
		}
	}
	return nil
}

// ddiArtifacts are the artifacts the DDI API would offer a device.
func ddiArtifacts(rel store.Release, deviceType, rev string) []store.Artifact {
	var out []store.Artifact
	for _, a := range rel.Artifacts {
		if a.DeviceType != deviceType || a.Type == store.ArtifactDelta {
			continue
		}
		if len(a.HWRevs) == 0 || slices.Contains(a.HWRevs, rev) {
			out = append(out, a)
		}
	}
	return out
}

// SuitsDDI reports whether a DDI client can install a deployment of these
// artifacts: SWUpdate takes an .swu of type swu; rauc-hawkbit-updater
// exactly one artifact, a RAUC bundle; Zephyr exactly one artifact, in the
// bApp chunk.
func SuitsDDI(arts []store.Artifact) bool {
	for _, a := range arts {
		if a.Type == store.ArtifactSWU && strings.HasSuffix(a.Name, ".swu") {
			return true
		}
	}
	if len(arts) != 1 {
		return false
	}
	return arts[0].Type == store.ArtifactRAUCBundle || arts[0].Component == "bApp"
}
