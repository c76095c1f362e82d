// SparsePacking.cs: the two si_sparse_matmul weight layouts as plain span functions: packing a
// pruned dense row into them, unpacking it again, and checking packed metadata against a shape.
// Everything that reads a checkpoint's sparse arrays goes through the checks here once, because the
// kernels trust their metadata (sharpinfer.h).
//
// 2:4 (semi-structured): kp = k rounded up to 16 (zero padded). A row has kp/4 groups of 4; each
// keeps 2 values (in k order) and a 4-bit code: bits 0-1 the first kept position, bits 2-3 the
// second, first < second. uint16 word j of a row holds the codes of groups 4j..4j+3, group g in
// bits [4(g%4), 4(g%4)+4). A group with fewer than 2 non-zeros keeps zeros at its lowest zero
// positions, so packing is deterministic and unpacking restores the dense row exactly.
//
// bitmask (unstructured): uint64 words per row, ceil(k/64) of them, bit j of word w keeps column
// 64w + j (bits at or past k are 0); the kept values of all rows back to back in k order; int64
// row offsets [n + 1] with offsets[r+1] - offsets[r] = popcount of row r's words.
using System.Numerics;

namespace SharpInfer.Sparsity;

public static class SparsePacking
{
    /// <summary>k rounded up to a multiple of 16: the 2:4 layout pads rows so each uint16 metadata word covers 4 whole groups.</summary>
    public static int PaddedColumns(int columns) => (columns + 15) / 16 * 16;

    /// <summary>Kept values per row in the 2:4 layout: kp / 2.</summary>
    public static int TwoFourValuesPerRow(int columns) => PaddedColumns(columns) / 2;

    /// <summary>uint16 metadata words per row in the 2:4 layout: kp / 16.</summary>
    public static int TwoFourMetaPerRow(int columns) => PaddedColumns(columns) / 16;

    /// <summary>uint64 mask words per row in the bitmask layout: ceil(k / 64).</summary>
    public static int MaskWordsPerRow(int columns) => (columns + 63) / 64;

    /// <summary>
    /// Packs one pruned row into 2:4 form. Returns -1 on success, else the first column of a group
    /// holding more than 2 non-zeros (the row is not 2:4).
    /// </summary>
    public static int PackTwoFourRow(ReadOnlySpan<float> row, Span<float> values, Span<ushort> meta)
    {
        int columns = row.Length, groups = PaddedColumns(columns) / 4;
        Span<int> kept = stackalloc int[4];
        for (int g = 0; g < groups; g++)
        {
            int count = 0;
            for (int p = 0; p < 4; p++)
            {
                int c = 4 * g + p;
                if (c < columns && row[c] != 0)
                {
                    if (count == 2) return 4 * g;
                    kept[count++] = p;
                }
            }
            // Fill up to two positions with the lowest zero positions, then order them.
            for (int p = 0; count < 2; p++)
                if (count == 0 || kept[0] != p) kept[count++] = p;
            if (kept[0] > kept[1]) (kept[0], kept[1]) = (kept[1], kept[0]);
            for (int i = 0; i < 2; i++)
            {
                int c = 4 * g + kept[i];
                values[2 * g + i] = c < columns ? row[c] : 0f;
            }
            int shift = 4 * (g & 3);
            ref ushort word = ref meta[g >> 2];
            if (shift == 0) word = 0;
            word |= (ushort)((kept[0] | (kept[1] << 2)) << shift);
        }
        return -1;
    }

    /// <summary>Restores a dense row from its 2:4 values and metadata (columns not kept become 0).</summary>
    public static void UnpackTwoFourRow(ReadOnlySpan<float> values, ReadOnlySpan<ushort> meta, Span<float> row)
    {
        int columns = row.Length, groups = PaddedColumns(columns) / 4;
        row.Clear();
        for (int g = 0; g < groups; g++)
        {
            int code = (meta[g >> 2] >> (4 * (g & 3))) & 0xF;
            int c0 = 4 * g + (code & 3), c1 = 4 * g + (code >> 2);
            if (c0 < columns) row[c0] = values[2 * g];
            if (c1 < columns) row[c1] = values[2 * g + 1];
        }
    }

    /// <summary>Non-zeros a row keeps in the bitmask layout.</summary>
    public static int CountNonZeros(ReadOnlySpan<float> row)
    {
        int n = 0;
        foreach (float v in row) if (v != 0) n++;
        return n;
    }

    /// <summary>Packs one pruned row into bitmask form; <paramref name="values"/> must hold its non-zero count.</summary>
    public static void PackBitmaskRow(ReadOnlySpan<float> row, Span<ulong> mask, Span<float> values)
    {
        mask.Clear();
        int n = 0;
        for (int c = 0; c < row.Length; c++)
        {
            if (row[c] == 0) continue;
            mask[c >> 6] |= 1UL << (c & 63);
            values[n++] = row[c];
        }
    }

    /// <summary>Restores a dense row from its mask words and kept values.</summary>
    public static void UnpackBitmaskRow(ReadOnlySpan<ulong> mask, ReadOnlySpan<float> values, Span<float> row)
    {
        row.Clear();
        int n = 0;
        for (int w = 0; w < mask.Length; w++)
        {
            ulong bits = mask[w];
            while (bits != 0)
            {
                int j = BitOperations.TrailingZeroCount(bits);
                row[64 * w + j] = values[n++];
                bits &= bits - 1;
            }
        }
    }

    /// <summary>Kept columns of a row's mask words.</summary>
    public static long PopCount(ReadOnlySpan<ulong> mask)
    {
        long n = 0;
        foreach (ulong w in mask) n += BitOperations.PopCount(w);
        return n;
    }

    /// <summary>
    /// Checks 2:4 metadata codes of one row: every group's positions must be increasing. Returns
    /// -1 when valid, else the index of the first bad group.
    /// </summary>
    public static int FindBadTwoFourGroup(ReadOnlySpan<ushort> meta, int columns)
    {
        int groups = PaddedColumns(columns) / 4;
        for (int g = 0; g < groups; g++)
        {
            int code = (meta[g >> 2] >> (4 * (g & 3))) & 0xF;
            if ((code & 3) >= (code >> 2)) return g;
        }
        return -1;
    }

    /// <summary>True when a row's mask has no bit at or past <paramref name="columns"/>.</summary>
    public static bool MaskTailIsClear(ReadOnlySpan<ulong> mask, int columns)
    {
        int rem = columns & 63;
        if (rem != 0 && (mask[^1] >> rem) != 0) return false;
        return true;
    }
}
