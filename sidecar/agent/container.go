package agent

import (
	"bytes"
	"fmt"
	"os"
	"sync"
)

// containerNameEnv is the variable the webhook sets in each of the pod's
// own containers to its name (webhook.ContainerNameEnv; not imported: the
// sidecar does not depend on the webhook).
const containerNameEnv = "TRACECAM_CONTAINER_NAME"

// containerNames says which of the pod's containers a process belongs to,
// from the name the webhook put in its environment. Read once per process
// (the environment a process started with does not change), off nothing
// hot: the assembler asks once per profile.
type containerNames struct {
	mu    sync.Mutex
	names map[uint32]string
}

func newContainerNames() *containerNames {
	return &containerNames{names: map[uint32]string{}}
}

// of is the assembler's Config.ContainerOf: "" when unknown (a process
// outside a webhook-injected pod, or whose environment cannot be read).
func (c *containerNames) of(pid uint32) string {
	c.mu.Lock()
	name, ok := c.names[pid]
	c.mu.Unlock()
	if ok {
		return name
	}
	name = envValue(fmt.Sprintf("/proc/%d/environ", pid), containerNameEnv)
	c.mu.Lock()
	if len(c.names) >= 4096 { // pids are reused: start over rather than grow
		c.names = map[uint32]string{}
	}
	c.names[pid] = name
	c.mu.Unlock()
	return name
}

// envValue is key's value in an environ file (NUL-separated KEY=value).
func envValue(path, key string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return environValue(b, key)
}

func environValue(environ []byte, key string) string {
	prefix := []byte(key + "=")
	for _, kv := range bytes.Split(environ, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, prefix); ok {
			return string(v)
		}
	}
	return ""
}
