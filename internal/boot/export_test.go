package boot

import (
	"context"
	"fmt"
)

// SimulateBoot runs b's boot script once against b's real environment (a
// *UBoot or *GRUB), as the bootloader would at power-on, so tests can check
// what the real tools wrote by booting it.
func SimulateBoot(ctx context.Context, b Backend) (string, error) {
	switch x := b.(type) {
	case *UBoot:
		return x.env.simulateBoot(ctx)
	case *GRUB:
		return x.env.simulateBoot(ctx)
	}
	return "", fmt.Errorf("cannot simulate booting a %T", b)
}
