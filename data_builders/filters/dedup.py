"""Near-duplicate removal with MinHash LSH (`datasketch`): of rows whose texts have an estimated Jaccard
similarity of word shingles at or above the threshold, the first (in build order) is kept.

Shingles are `shingle` consecutive tokens of `verifiers.tokens.words` (a text shorter than that is one
shingle). MinHash uses datasketch's fixed default seed, so the same rows always give the same kept set.
"""

from datasketch import MinHash, MinHashLSH

from verifiers.tokens import words


def minhash(text: str, num_perm: int, shingle: int) -> MinHash:
    tokens = words(text)
    grams = {" ".join(tokens[i : i + shingle]) for i in range(max(1, len(tokens) - shingle + 1))}
    signature = MinHash(num_perm=num_perm)
    signature.update_batch([g.encode() for g in grams])
    return signature


class NearDuplicateIndex:
    """The kept texts so far; `add(text)` keeps a text unless it near-duplicates one of them. Used over a list
    (`near_duplicates`) and over a stream (the scaled engine's merge)."""

    def __init__(self, threshold: float = 0.85, num_perm: int = 128, shingle: int = 5) -> None:
        self.threshold, self.num_perm, self.shingle = threshold, num_perm, shingle
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.kept: list[MinHash] = []  # signatures of kept texts; LSH candidates are confirmed on the Jaccard estimate

    def add(self, text: str) -> int | None:
        """None if `text` is kept (and indexed); else the position, among kept texts, of the first it duplicates."""
        signature = minhash(text, self.num_perm, self.shingle)
        twins = [j for j in map(int, self.lsh.query(signature)) if signature.jaccard(self.kept[j]) >= self.threshold]
        if twins:
            return min(twins)
        self.lsh.insert(str(len(self.kept)), signature)
        self.kept.append(signature)
        return None


def near_duplicates(texts: list[str], threshold: float = 0.85, num_perm: int = 128,
                    shingle: int = 5) -> list[int | None]:
    """For each text, the index of the earlier kept text it duplicates, or None if it is kept."""
    index = NearDuplicateIndex(threshold, num_perm, shingle)
    kept_at: list[int] = []  # position among kept texts -> position among `texts`
    out: list[int | None] = []
    for i, text in enumerate(texts):
        twin = index.add(text)
        if twin is None:
            kept_at.append(i)
        out.append(None if twin is None else kept_at[twin])
    return out
