// Package sim runs fleets of simulated devices against an Updraft server.
// Every simulated device is the real agent library (internal/agent) on an
// in-memory crash-testing filesystem (devfs.CrashFS) with hash-only A/B
// slots and the simulated bootloader (boot.Sim); the protocol is never
// re-implemented here. What the simulator adds is behaviour: a fleet
// profile chooses each device's hardware, region and time zone, the link
// it talks over (latency and dropped connections, through an
// http.RoundTripper), how often power fails during an update, and how each
// release behaves on each hardware revision (failed self-tests, images
// that never boot, a changed crash rate). These reach the agent only
// through the hooks a real device has: the health check, the crash-count
// sensor, power cuts of the filesystem and the bootloader's watchdog.
//
// Invariants:
//   - A Fleet steps each device from at most one goroutine at a time, so a
//     device and its agent need no locking; Stats and Devices may be called
//     from any goroutine.
//   - Devices are scheduled by their agents' own wake-up times on the
//     fleet's clock (fake, accelerated or real), not by a goroutine each,
//     so 10,000 devices cost memory, not 10,000 busy goroutines.
//   - Everything random is drawn from seeded generators: the same profile,
//     seed and server behaviour give the same fleet.
package sim
