package store

// Device fields CountDevicesBy groups by: the strata a fleet is usually
// broken down into (per hardware revision, region, installed version…).
const (
	CountByDeviceType = "device_type"
	CountByHWRev      = "hw_rev"
	CountByRegion     = "region"
	CountByState      = "state"
	CountByVersion    = "version"
)

// CountByFields returns the fields CountDevicesBy accepts, in a fixed order.
func CountByFields() []string {
	return []string{CountByDeviceType, CountByHWRev, CountByRegion, CountByState, CountByVersion}
}

// IsCountByField reports whether CountDevicesBy accepts field.
func IsCountByField(field string) bool {
	switch field {
	case CountByDeviceType, CountByHWRev, CountByRegion, CountByState, CountByVersion:
		return true
	}
	return false
}
