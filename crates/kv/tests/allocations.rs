//! Applying a committed entry allocates only what the store keeps: counted by a global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kv::{Command, CommandRef, Op, Reply, Store};

struct Counting;

thread_local! {
    // Per thread: the test harness runs other tests on other threads at the same time.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (result, ALLOCATIONS.with(Cell::get) - before)
}

fn entry(client_id: u64, seq: u64, op: Op) -> Vec<u8> {
    Command { client_id, seq, op }.encode()
}

#[test]
fn decoding_an_entry_allocates_nothing() {
    let put = entry(0, 7, Op::Put { key: b"key".to_vec(), value: vec![1; 300] });
    let (command, count) = allocations(|| CommandRef::decode(&put).expect("decodes"));
    assert_eq!(count, 0);
    let kv::OpRef::Put { key, value } = command.op else { panic!("a put") };
    assert!(put.as_ptr_range().contains(&key.as_ptr()) && put.as_ptr_range().contains(&value.as_ptr()), "borrowed from the entry");
}

#[test]
fn overwriting_a_key_allocates_the_new_value_only() {
    let mut store = Store::new();
    let first = entry(0, 1, Op::Put { key: b"key".to_vec(), value: vec![1; 300] });
    store.apply(1, &CommandRef::decode(&first).expect("decodes"));
    for (index, client_id) in [(2, 0), (3, 9), (4, 9)] {
        let again = entry(client_id, index, Op::Put { key: b"key".to_vec(), value: vec![index as u8; 300] });
        let (reply, count) = allocations(|| store.apply(index, &CommandRef::decode(&again).expect("decodes")));
        assert_eq!(reply, Reply::Done);
        // The value's shared buffer; a tagged write's first makes its session (a node of the
        // session map and one of the eviction order), later ones update it in place.
        let session = usize::from(index == 3);
        assert_eq!(count, 1 + 2 * session, "entry {index}");
    }
    assert_eq!(store.get(b"key"), Some(&[4; 300][..]));
    let append = entry(0, 5, Op::Append { key: b"key".to_vec(), value: vec![5; 10] });
    let (reply, count) = allocations(|| store.apply(5, &CommandRef::decode(&append).expect("decodes")));
    // The first append moves the value into a growable buffer (its bytes, and the shared handle)...
    assert_eq!((reply, count), (Reply::Length(310), 2));
    // ...which later appends extend in place (its capacity is the next power of two, 512).
    let again = entry(0, 6, Op::Append { key: b"key".to_vec(), value: vec![6; 10] });
    let (reply, count) = allocations(|| store.apply(6, &CommandRef::decode(&again).expect("decodes")));
    assert_eq!((reply, count), (Reply::Length(320), 0));
}
