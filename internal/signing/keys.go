package signing

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// OnlineRoles are the roles whose keys the server holds.
var OnlineRoles = []string{metadata.SNAPSHOT, metadata.TIMESTAMP, tufmeta.RoleDirector}

// MinKeyEncryptionKey is the shortest key-encryption key accepted.
const MinKeyEncryptionKey = 32

// maxImportedKey bounds an uploaded private key PEM.
const maxImportedKey = 16 << 10

// sealer encrypts online private keys for the store: AES-256-GCM under a
// key derived with HKDF-SHA256 from the key-encryption key, with the
// tenant, key id and role as associated data, so a sealed key copied to
// another row or tenant does not open.
//
// Why not the store's own secrets table or a passphrase-encrypted PEM: the
// point is that a copy of the database (a backup, a replica, a dump taken
// through an injection) does not hold usable online keys, so the KEK must
// live elsewhere (a file readable only by the server, or a secret
// manager). It is random, not a passphrase, so a fast KDF suffices; scrypt
// would only slow every replica's start.
type sealer struct{ aead cipher.AEAD }

func newSealer(kek []byte) (*sealer, error) {
	if len(kek) < MinKeyEncryptionKey {
		return nil, fmt.Errorf("key-encryption key is %d bytes, need at least %d", len(kek), MinKeyEncryptionKey)
	}
	k, err := hkdf.Key(sha256.New, kek, nil, "updraft online signing keys v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func sealAD(tenant, keyID, role string) []byte {
	return []byte(tenant + "\x00" + keyID + "\x00" + role)
}

func (s *sealer) seal(tenant, keyID, role string, plain []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, sealAD(tenant, keyID, role)), nil
}

var errWrongKEK = errors.New("cannot decrypt: sealed with another key-encryption key, or damaged")

func (s *sealer) open(tenant, keyID, role string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errWrongKEK
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], sealAD(tenant, keyID, role))
	if err != nil {
		return nil, errWrongKEK
	}
	return plain, nil
}

// onlineKey is an online key the service can sign with.
type onlineKey struct {
	id     string
	role   string
	public *metadata.Key
	signer tufrepo.Signer
}

// OnlineKey describes one of the server's online keys.
type OnlineKey struct {
	KeyID string `json:"key_id"`
	Role  string `json:"role"`
	// PublicKey is the TUF key record to list in root.
	PublicKey *metadata.Key `json:"public_key"`
	// InRoot says whether the latest root lists the key for its role.
	InRoot bool `json:"in_root"`
	// Usable is false when this replica cannot decrypt the key (Problem
	// says why).
	Usable    bool   `json:"usable"`
	Problem   string `json:"problem,omitempty"`
	CreatedAt string `json:"created_at"`
}

// loadKeys opens every stored online key. Keys that do not open are
// remembered with the reason, for readiness and the status view; they do
// not stop the server, which may still serve metadata another replica
// signs.
func (s *Service) loadKeys(ctx context.Context) error {
	stored, err := s.store.OnlineKeys(ctx, s.tenant)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	keys := map[string]*onlineKey{}
	problems := map[string]string{}
	for _, k := range stored {
		ok, err := s.openKey(k)
		if err != nil {
			problems[k.KeyID] = err.Error()
			s.log.Warn("signing: online key unusable", "key_id", k.KeyID, "role", k.Role, "err", err)
			continue
		}
		keys[k.KeyID] = ok
	}
	s.mu.Lock()
	s.keys, s.keyErrs, s.keysAt = keys, problems, s.clock.Now()
	s.mu.Unlock()
	return nil
}

// keysStale reports whether the keys were loaded more than a publish
// interval ago: a root naming keys nobody stored must not cost a store read
// per check-in.
func (s *Service) keysStale() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clock.Now().Sub(s.keysAt) >= s.opts.PublishInterval
}

func (s *Service) openKey(k store.OnlineKey) (*onlineKey, error) {
	pemBytes, err := s.seal.open(s.tenant, k.KeyID, k.Role, k.Sealed)
	if err != nil {
		return nil, err
	}
	priv, err := tufrepo.ParsePrivateKey(pemBytes, nil)
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	return newOnlineKey(k.Role, priv)
}

func newOnlineKey(role string, priv crypto.Signer) (*onlineKey, error) {
	signer, err := tufrepo.NewSigner(priv)
	if err != nil {
		return nil, err
	}
	pub, err := tufrepo.SignerKey(signer)
	if err != nil {
		return nil, err
	}
	id, err := tufrepo.KeyID(pub)
	if err != nil {
		return nil, err
	}
	return &onlineKey{id: id, role: role, public: pub, signer: signer}, nil
}

// GenerateOnlineKeys makes a new key for each role (snapshot, timestamp
// or director) and stores it sealed. The private halves never leave the
// server; list the public keys in root (keys init or keys rotate online)
// and the service starts signing with them once a root names them.
func (s *Service) GenerateOnlineKeys(ctx context.Context, roles []string, by store.Actor) ([]OnlineKey, error) {
	if err := checkOnlineRoles(roles); err != nil {
		return nil, err
	}
	var out []OnlineKey
	for _, role := range roles {
		priv, err := tufrepo.GenerateKey(s.opts.KeyType)
		if err != nil {
			return nil, err
		}
		k, err := s.addKey(ctx, role, priv, by)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// ImportOnlineKey stores a private key (PKCS#8 PEM, unencrypted) generated
// elsewhere as an online key for role.
func (s *Service) ImportOnlineKey(ctx context.Context, role string, pemBytes []byte, by store.Actor) (OnlineKey, error) {
	if err := checkOnlineRoles([]string{role}); err != nil {
		return OnlineKey{}, err
	}
	if len(pemBytes) > maxImportedKey {
		return OnlineKey{}, &InputError{Code: "bad_key", Msg: fmt.Sprintf("the key is larger than %d bytes", maxImportedKey)}
	}
	priv, err := tufrepo.ParsePrivateKey(pemBytes, nil)
	if err != nil {
		return OnlineKey{}, &InputError{Code: "bad_key", Msg: "not an unencrypted PKCS#8 PEM private key (ed25519, ECDSA P-256 or RSA): " + err.Error()}
	}
	return s.addKey(ctx, role, priv, by)
}

func checkOnlineRoles(roles []string) error {
	if len(roles) == 0 {
		return &InputError{Code: "bad_role", Msg: "name at least one online role: snapshot, timestamp or director"}
	}
	for _, r := range roles {
		if !slices.Contains(OnlineRoles, r) {
			return &InputError{Code: "bad_role", Msg: fmt.Sprintf("%q is not an online role (snapshot, timestamp or director)", r)}
		}
	}
	return nil
}

func (s *Service) addKey(ctx context.Context, role string, priv crypto.Signer, by store.Actor) (OnlineKey, error) {
	k, err := newOnlineKey(role, priv)
	if err != nil {
		return OnlineKey{}, &InputError{Code: "bad_key", Msg: err.Error()}
	}
	pemBytes, err := tufrepo.MarshalPrivateKey(priv, nil)
	if err != nil {
		return OnlineKey{}, err
	}
	sealed, err := s.seal.seal(s.tenant, k.id, role, pemBytes)
	if err != nil {
		return OnlineKey{}, err
	}
	pub, err := json.Marshal(k.public)
	if err != nil {
		return OnlineKey{}, err
	}
	stored, err := s.store.AddOnlineKey(ctx, store.OnlineKey{TenantID: s.tenant, KeyID: k.id, Role: role, PublicKey: string(pub), Sealed: sealed}, by, s.clock.Now())
	if err != nil {
		return OnlineKey{}, err
	}
	s.mu.Lock()
	s.keys[k.id] = k
	s.mu.Unlock()
	st, _ := s.current(ctx)
	return s.describeKey(stored, k, "", st), nil
}

// OnlineKeys lists the stored online keys with their public halves.
func (s *Service) OnlineKeys(ctx context.Context) ([]OnlineKey, error) {
	stored, err := s.store.OnlineKeys(ctx, s.tenant)
	if err != nil {
		return nil, err
	}
	st, err := s.refresh(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	keys, problems := s.keys, s.keyErrs
	s.mu.RUnlock()
	var missing bool
	out := make([]OnlineKey, 0, len(stored))
	for _, sk := range stored {
		if keys[sk.KeyID] == nil && problems[sk.KeyID] == "" {
			missing = true
		}
	}
	if missing { // another replica added keys
		if err := s.loadKeys(ctx); err != nil {
			return nil, err
		}
		s.mu.RLock()
		keys, problems = s.keys, s.keyErrs
		s.mu.RUnlock()
	}
	for _, sk := range stored {
		out = append(out, s.describeKey(sk, keys[sk.KeyID], problems[sk.KeyID], st))
	}
	return out, nil
}

func (s *Service) describeKey(sk store.OnlineKey, k *onlineKey, problem string, st *state) OnlineKey {
	out := OnlineKey{KeyID: sk.KeyID, Role: sk.Role, Usable: k != nil, Problem: problem, CreatedAt: sk.CreatedAt.UTC().Format("2006-01-02T15:04:05Z07:00")}
	var pub metadata.Key
	if json.Unmarshal([]byte(sk.PublicKey), &pub) == nil {
		out.PublicKey = &pub
	}
	if st != nil && st.repo != nil {
		out.InRoot = slices.Contains(rootKeyIDs(st.repo.Root(), sk.Role), sk.KeyID)
	}
	return out
}

// rootKeyIDs lists the key ids root gives role (nil if root does not parse).
func rootKeyIDs(root []byte, role string) []string {
	m, err := metadata.Root().FromBytes(root)
	if err != nil {
		return nil
	}
	r, ok := m.Signed.Roles[role]
	if !ok {
		return nil
	}
	return r.KeyIDs
}

// signersFor returns the held keys that root lists for role, reloading the
// keys once if root names keys this replica has not loaded (another replica
// generated them). On device requests (throttle) the reload happens at most
// once per publish interval.
func (s *Service) signersFor(ctx context.Context, root []byte, role string, throttle bool) []tufrepo.Signer {
	out, unknown := s.pickSigners(root, role)
	if unknown && (!throttle || s.keysStale()) {
		if err := s.loadKeys(ctx); err == nil {
			out, _ = s.pickSigners(root, role)
		}
	}
	return out
}

// heldSigners is signersFor without reloading.
func (s *Service) heldSigners(root []byte, role string) []tufrepo.Signer {
	out, _ := s.pickSigners(root, role)
	return out
}

// pickSigners returns the loaded keys root lists for role, and whether root
// lists keys this replica has neither loaded nor failed to open.
func (s *Service) pickSigners(root []byte, role string) ([]tufrepo.Signer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []tufrepo.Signer
	unknown := false
	for _, id := range rootKeyIDs(root, role) {
		k := s.keys[id]
		switch {
		case k != nil && k.role == role:
			out = append(out, k.signer)
		case k == nil && s.keyErrs[id] == "":
			unknown = true
		}
	}
	return out, unknown
}

// keyIDsOf names signers' keys, for stored documents' subjects.
func keyIDsOf(signers []tufrepo.Signer) string {
	var ids []string
	for _, sg := range signers {
		if k, err := tufrepo.SignerKey(sg); err == nil {
			if id, err := tufrepo.KeyID(k); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}
