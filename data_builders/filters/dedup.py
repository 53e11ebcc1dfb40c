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


def near_duplicates(texts: list[str], threshold: float = 0.85, num_perm: int = 128,
                    shingle: int = 5) -> list[int | None]:
    """For each text, the index of the earlier kept text it duplicates, or None if it is kept."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    lsh_signatures: dict[int, MinHash] = {}  # kept rows; LSH candidates are confirmed on the Jaccard estimate
    out: list[int | None] = []
    for i, text in enumerate(texts):
        signature = minhash(text, num_perm, shingle)
        near = [int(key) for key in lsh.query(signature)]
        twins = sorted(j for j in near if signature.jaccard(lsh_signatures[j]) >= threshold) if near else []
        if twins:
            out.append(twins[0])
            continue
        lsh.insert(str(i), signature)
        lsh_signatures[i] = signature
        out.append(None)
    return out
