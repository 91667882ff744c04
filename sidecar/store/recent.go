package store

// recentLog holds every profile's stored form in one circular byte arena,
// oldest overwritten first: memory is fixed by its size in bytes, and the
// arena and its index hold no pointers, so the garbage collector never
// scans them however many profiles they hold.
type recentLog struct {
	arena []byte
	// end is the absolute position (bytes ever written, counting the tail
	// of the arena skipped when a record did not fit before its end) just
	// past the newest record; a record at absolute position pos is intact
	// while pos >= end - len(arena).
	end uint64
	// idx is a ring of the records' index entries, oldest at head.
	idx        []recentEntry
	head, size int
	evicted    uint64
}

// recentEntry is what a scan needs without decoding the record.
type recentEntry struct {
	pos      uint64 // absolute position in the arena
	n        uint32 // record length
	trace    uint64 // hash of the trace ID
	startNS  int64  // wall-clock start, Unix ns
	duration int64
}

// minRecordBytes sizes the index (40 B an entry): a typical stored form
// is 200-400 bytes; when many are smaller, the index is what bounds the
// log (the oldest entries go first either way).
const minRecordBytes = 160

func newRecentLog(bytes int) *recentLog {
	if bytes < 4096 {
		bytes = 4096
	}
	return &recentLog{arena: make([]byte, bytes), idx: make([]recentEntry, bytes/minRecordBytes)}
}

// add stores rec (which must fit the arena) and reports the trace hashes
// it evicted to onEvict.
func (l *recentLog) add(rec []byte, e recentEntry, onEvict func(trace uint64)) bool {
	size := uint64(len(l.arena))
	n := uint64(len(rec))
	if n == 0 || n > size/4 {
		return false
	}
	pos := l.end
	if off := pos % size; off+n > size {
		pos += size - off // skip the tail: records never wrap
	}
	newEnd := pos + n
	// Evict what the new record overwrites, and the oldest entry when the
	// index is full.
	for l.size > 0 {
		old := &l.idx[l.head]
		if old.pos >= newEnd-min(newEnd, size) && l.size < len(l.idx) {
			break
		}
		if onEvict != nil {
			onEvict(old.trace)
		}
		l.head = (l.head + 1) % len(l.idx)
		l.size--
		l.evicted++
	}
	off := pos % size
	copy(l.arena[off:off+n], rec)
	e.pos, e.n = pos, uint32(n)
	l.idx[(l.head+l.size)%len(l.idx)] = e
	l.size++
	l.end = newEnd
	return true
}

// record is entry i's bytes (i = 0 is the oldest); they alias the arena.
func (l *recentLog) record(e *recentEntry) []byte {
	off := e.pos % uint64(len(l.arena))
	return l.arena[off : off+uint64(e.n)]
}

// each calls f for every record, oldest first, until f returns false.
func (l *recentLog) each(f func(e *recentEntry) bool) {
	for i := 0; i < l.size; i++ {
		if !f(&l.idx[(l.head+i)%len(l.idx)]) {
			return
		}
	}
}

// oldest is the oldest record's entry, if any.
func (l *recentLog) oldest() (recentEntry, bool) {
	if l.size == 0 {
		return recentEntry{}, false
	}
	return l.idx[l.head], true
}

// used is the bytes the intact records occupy.
func (l *recentLog) used() uint64 {
	if l.size == 0 {
		return 0
	}
	return l.end - l.idx[l.head].pos
}
