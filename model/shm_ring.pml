/* The shm:// ring protocol (ipckit/backends/shm.py, csrc/core.c) as a Promela model.
 *
 * Checked by scripts/model_check.sh with spin in every CI run: exhaustive search of every
 * interleaving of two producers and two consumers over a one-record ring (so the second
 * send finds it full and waits), any one of which may be SIGKILLed at any step: about
 * 16.5 million states, 20 s. Two messages each or a second slot multiply the states past
 * what a CI run can afford; the waits, both takeovers and the stall rule are all reached
 * in this size (spin's "unreached" list names only the takeover after a sleep, which a
 * one-message producer never needs).
 *
 * What it models, one statement per shared-memory access the code makes:
 *   - the ring: SLOTS records; tail moves only after a record is copied (reserve, copy in
 *     two halves, commit), head only after a record is copied out;
 *   - the two locks (RobustLock): a semaphore taken by a wait, then the owner pid written
 *     in a second step (the window a death can fall into), the dirty flag, release by plain
 *     stores then the post; a waiter that finds the owner dead takes the lock over under
 *     the recovery flock (one atomic step here), and one that finds no owner at all takes
 *     it over after the stall bound (10 s in the code), modelled for a dead holder only;
 *   - the waiter counts and doorbells (sleep with a timeout: the code sleeps in 50 ms
 *     slices, so a sleeper re-checks even when no post comes).
 * What it leaves out: record bytes (a record is one id written in two halves), wrap-around
 * and pad records (ring arithmetic is property-tested in tests/ring/), out-of-band blocks,
 * shutdown, the C core's spin before it sleeps (a read-only loop), and a live holder
 * stalled for the full takeover bound (the documented limit: it can be robbed).
 *
 * Properties: no record torn (both halves equal when copied out), none taken twice, and at
 * the end every message whose send returned was taken, except by a consumer killed while
 * holding it; no deadlock (spin's invalid end states), whoever dies and wherever.
 */

#define SLOTS 1
#define PRODUCERS 2
#define MSGS 1              /* per producer: with one slot, the second producer finds it full */
#define NIDS (PRODUCERS * MSGS + 1)
#define NPROC 5             /* pids 1..4 are workers */

byte half1[SLOTS];
byte half2[SLOTS];
byte head = 0;
byte tail = 0;

/* RobustLock: semaphore, owner pid, dirty flag; ghost holder for the stall rule. */
typedef Lock { bit sem = 1; byte owner; bit dirty; byte holder; byte recoveries }
Lock slock;
Lock rlock;

byte recv_waiters = 0;
byte send_waiters = 0;
byte items = 0;             /* doorbell semaphores */
byte space = 0;

bit alive[NPROC];
byte deaths = 0;            /* at most one SIGKILL per run */
bool returned[NIDS];
byte taken[NIDS];
byte producers_done = 0;

/* A death can strike between any two statements of a worker. */
#define MAYBE_DIE(me) if :: atomic { deaths == 0 -> deaths++; alive[me] = 0 }; goto dead :: true fi

inline take(L, me) {
    do
    :: atomic { L.sem == 1 -> L.sem = 0; L.holder = me }
       MAYBE_DIE(me);
       L.owner = me;                    /* the second step: a death before it leaves no owner */
       break
    :: atomic { L.sem == 0 && L.owner != 0 && !alive[L.owner] ->
                L.owner = me; L.holder = me }   /* takeover under the recovery flock */
       break
    :: atomic { L.sem == 0 && L.owner == 0 && L.holder != 0 && !alive[L.holder] ->
                L.owner = me; L.holder = me }   /* the stall bound, for a dead holder */
       break
    od;
    if :: L.dirty -> L.recoveries++ :: else fi;
    L.dirty = 1
}

inline give(L, me) {
    if
    :: L.owner == me ->
        L.dirty = 0;
        L.owner = 0;
        MAYBE_DIE(me);               /* between the stores and the post: no owner, sem taken */
        L.holder = 0;
        L.sem = 1
    :: else                          /* taken over meanwhile: not ours to give back */
    fi
}

inline sleep_on(bell) {
    /* sem_timedwait: a post, or the slice runs out */
    if :: atomic { bell > 0 -> bell-- } :: true fi
}

proctype Producer(byte me; byte first) {
    byte i = 0;
    byte id;
    byte slot;
    alive[me] = 1;
    do
    :: i == MSGS -> break
    :: i < MSGS ->
        id = first + i;
        take(slock, me);
        MAYBE_DIE(me);
        if
        :: tail - head == SLOTS ->                      /* full: count ourselves, sleep */
            send_waiters++;
            give(slock, me);
            MAYBE_DIE(me);
            sleep_on(space);
            take(slock, me);
            send_waiters--;
            give(slock, me)
        :: else ->
            slot = tail % SLOTS;
            half1[slot] = id;                           /* reserve and copy */
            MAYBE_DIE(me);
            half2[slot] = id;
            MAYBE_DIE(me);
            tail++;                                     /* commit: now receivers see it */
            MAYBE_DIE(me);
            give(slock, me);
            returned[id] = 1;                           /* send() returns */
            if :: items < recv_waiters -> items++ :: else fi  /* ring_if_below */;
            i++
        fi;
        MAYBE_DIE(me)
    od;
    producers_done++;
    goto done;
dead:
    producers_done++;
done:
    skip
}

proctype Consumer(byte me) {
    byte slot;
    byte got;
    alive[me] = 1;
    do
    :: producers_done == PRODUCERS && head == tail -> break
    :: else ->
        take(rlock, me);
        MAYBE_DIE(me);
        if
        :: head == tail ->                              /* empty: count ourselves, sleep */
            recv_waiters++;
            give(rlock, me);
            MAYBE_DIE(me);
            sleep_on(items);
            take(rlock, me);
            recv_waiters--;
            give(rlock, me)
        :: else ->
            slot = head % SLOTS;
            assert(half1[slot] == half2[slot]);        /* never torn */
            got = half1[slot];
            MAYBE_DIE(me);
            atomic { head++; taken[got]++ }             /* taken: the record is ours */
            assert(taken[got] == 1);                    /* never twice */
            give(rlock, me);
            if :: space < send_waiters -> space++ :: else fi  /* ring_if_below */
        fi;
        MAYBE_DIE(me)
    od;
dead:
    skip
}

/* Once nobody can move any more (everyone finished or dead): every message whose send
 * returned was taken, exactly once. A consumer survives (one death at most), and it
 * drains the ring before it stops; a message a killed consumer had taken counts as
 * taken (delivery is at most once: it is lost with its receiver, never redelivered). */
proctype Judge() {
    byte k;
    timeout;
    assert(head == tail);
    for (k : 1 .. NIDS - 1) {
        assert(!returned[k] || taken[k] == 1)
    }
}

init {
    atomic {
        run Producer(1, 1);
        run Producer(2, 1 + MSGS);
        run Consumer(3);
        run Consumer(4);
        run Judge()
    }
}
