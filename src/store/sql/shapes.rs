//! How many rows a statement of many rows has. A connection keeps the statements it prepared
//! (sqlx: its last 100), and a statement of `n` rows is a statement of its own for each `n`: a
//! writer that merged bursts of every size up to [`ROWS_PER_STATEMENT`] held a hundred
//! prepared statements of up to a few thousand values each, 10–20 MiB under a flood, and
//! prepared them again as they were evicted (BENCHMARKS.md, fifteenth pass). So rows go in
//! statements of a power of two rows each: [`chunks`] splits a list into such statements
//! (a list of fewer than 256 rows into at most eight), and [`padded`] fills a list whose
//! repeats do not matter (`IN (..)`, a list of pairs looked up) up to the next power of two
//! with its last item. Each statement then has one of nine shapes.

/// Most rows in one multi-row statement (SQLite allows 32766 bound values; the widest rows
/// bind 14).
pub const ROWS_PER_STATEMENT: usize = 256;

/// `rows` in slices whose lengths are powers of two, largest first, none longer than
/// [`ROWS_PER_STATEMENT`]: for statements whose rows must each be there once (inserts,
/// updates from a list).
pub fn chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let n = ROWS_PER_STATEMENT.min(1 << rows.len().ilog2());
        let (head, rest) = rows.split_at(n);
        rows = rest;
        Some(head)
    })
}

/// `items`, then the last of them again until there are as many as the next power of two.
pub fn padded<T>(items: &[T]) -> impl Iterator<Item = &T> {
    let fill = items.len().next_power_of_two() - items.len();
    items.iter().chain(
        items
            .last()
            .into_iter()
            .flat_map(move |l| std::iter::repeat_n(l, fill)),
    )
}

/// `items` in lists of [`ROWS_PER_STATEMENT`], the last [`padded`]: for statements whose
/// lists may repeat an item (`IN (..)`, a list of pairs looked up).
pub fn padded_chunks<T>(items: &[T]) -> impl Iterator<Item = impl Iterator<Item = &T>> {
    items.chunks(ROWS_PER_STATEMENT).map(padded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_in_order() {
        let rows: Vec<u32> = (0..1000).collect();
        for n in [0, 1, 2, 3, 7, 100, 255, 256, 257, 511, 1000] {
            let parts: Vec<&[u32]> = chunks(&rows[..n]).collect();
            assert!(
                parts
                    .iter()
                    .all(|p| p.len().is_power_of_two() && p.len() <= 256)
            );
            assert_eq!(parts.concat(), rows[..n].to_vec(), "n = {n}");
        }
        let sizes = |n: usize| chunks(&rows[..n]).map(<[u32]>::len).collect::<Vec<_>>();
        assert_eq!(sizes(100), [64, 32, 4]);
        assert_eq!(sizes(600), [256, 256, 64, 16, 8]);
        assert!(sizes(0).is_empty());
    }

    #[test]
    fn padding_repeats_the_last_up_to_a_power_of_two() {
        let p = |items: &[u32]| padded(items).copied().collect::<Vec<_>>();
        assert_eq!(p(&[]), Vec::<u32>::new());
        assert_eq!(p(&[7]), [7]);
        assert_eq!(p(&[1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(p(&[1, 2, 3, 4, 5]), [1, 2, 3, 4, 5, 5, 5, 5]);
        let rows: Vec<u32> = (0..300).collect();
        let lists: Vec<Vec<u32>> = padded_chunks(&rows).map(|l| l.copied().collect()).collect();
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[0], (0..256).collect::<Vec<_>>());
        assert_eq!(lists[1].len(), 64);
        assert_eq!(lists[1][..44], (256..300).collect::<Vec<_>>()[..]);
        assert!(lists[1][44..].iter().all(|&x| x == 299));
    }
}
