namespace Vlsm.Imaging;

/// <summary>
/// A fixed-width 6x11 bitmap font for printable ASCII, drawn straight into an <see cref="RgbImage"/>,
/// so captions and legends need no system font (a fresh Debian or a container may have none, and
/// SkiaSharp then draws nothing) and pictures are byte-identical on every machine. The glyphs were
/// rasterised once from DejaVu Sans Mono at 10 px without anti-aliasing; other characters draw as '?'.
/// </summary>
public static class BitmapFont
{
    public const int CellWidth = 6, CellHeight = 11;

    /// <summary>Row bit masks per glyph (bit 5 = leftmost column), 11 rows each, as hex: characters 32 to 126.</summary>
    private const string Glyphs =
        "0000000000000000000000" + // ' '
        "0004040404040004000000" + // '!'
        "000a0a0a00000000000000" + // '"'
        "000a0a1f143e1414000000" + // '#'
        "00040f141c07051e040000" + // '$'
        "0038283a0c170507000000" + // '%'
        "000e080c1513120d000000" + // '&'
        "0004040400000000000000" + // "'"
        "0408080808080808040000" + // '('
        "0808040404040408080000" + // ')'
        "00150e0e15000000000000" + // '*'
        "000004041f040400000000" + // '+'
        "0000000000000008080800" + // ','
        "00000000000e0000000000" + // '-'
        "0000000000000008000000" + // '.'
        "0001020204040808100000" + // '/'
        "000e11111511110e000000" + // '0'
        "001c04040404041f000000" + // '1'
        "000e11010306081f000000" + // '2'
        "000e11010e01110e000000" + // '3'
        "0002060a1a1f0202000000" + // '4'
        "001e101e0101011e000000" + // '5'
        "000f18101e11110e000000" + // '6'
        "001f030202040408000000" + // '7'
        "000e11110e11110e000000" + // '8'
        "000e11110f01031e000000" + // '9'
        "0000000800000008000000" + // ':'
        "0000000800000008080800" + // ';'
        "0000010e100e0100000000" + // '<'
        "0000003e003e0000000000" + // '='
        "0000100e010e1000000000" + // '>'
        "001e020408080008000000" + // '?'
        "000e091715151517080600" + // '@'
        "0004040a0a0e1111000000" + // 'A'
        "001e11111e11111e000000" + // 'B'
        "000f19101010190f000000" + // 'C'
        "001e13111111131e000000" + // 'D'
        "001f10101f10101f000000" + // 'E'
        "001f10101f101010000000" + // 'F'
        "000e19101311190f000000" + // 'G'
        "001111111f111111000000" + // 'H'
        "001f04040404041f000000" + // 'I'
        "000e02020202120c000000" + // 'J'
        "0011121418141211000000" + // 'K'
        "001010101010101f000000" + // 'L'
        "00111b1b15111111000000" + // 'M'
        "0011191915131311000000" + // 'N'
        "000e11111111110e000000" + // 'O'
        "001e11111e101010000000" + // 'P'
        "000e11111111110e030000" + // 'Q'
        "001e11111e131110000000" + // 'R'
        "000e11100e01110e000000" + // 'S'
        "001f040404040404000000" + // 'T'
        "001111111111110e000000" + // 'U'
        "0011110a0a0a0404000000" + // 'V'
        "00212d2d1e121212000000" + // 'W'
        "00110a0a040a0a11000000" + // 'X'
        "00110a0a04040404000000" + // 'Y'
        "001f02020408081f000000" + // 'Z'
        "0c080808080808080c0000" + // '['
        "0010080804040202010000" + // backslash
        "0c040404040404040c0000" + // ']'
        "0008142200000000000000" + // '^'
        "0000000000000000003f00" + // '_'
        "1008000000000000000000" + // '`'
        "0000001e010f111f000000" + // 'a'
        "1010101e1111111e000000" + // 'b'
        "0000000e1010100e000000" + // 'c'
        "0101010f1111110f000000" + // 'd'
        "0000000e111f100f000000" + // 'e'
        "0608081e08080808000000" + // 'f'
        "0000000f1111110f010e00" + // 'g'
        "1010101619111111000000" + // 'h'
        "0400000c0404041f000000" + // 'i'
        "0400001c04040404041800" + // 'j'
        "10101012141c1211000000" + // 'k'
        "3808080808080806000000" + // 'l'
        "0000001f15151515000000" + // 'm'
        "0000001619111111000000" + // 'n'
        "0000000e1111110e000000" + // 'o'
        "0000001e1111111e101000" + // 'p'
        "0000000f1111110f010100" + // 'q'
        "0000000f09080808000000" + // 'r'
        "0000000f100f011e000000" + // 's'
        "0008081e0808080e000000" + // 't'
        "000000111111110f000000" + // 'u'
        "000000110a0a0a04000000" + // 'v'
        "00000011150a0a0a000000" + // 'w'
        "0000001b0a040a1b000000" + // 'x'
        "000000110a0a0404041800" + // 'y'
        "0000001f0204081f000000" + // 'z'
        "0604040418040404060000" + // '{'
        "0404040404040404040400" + // '|'
        "0c040404030404040c0000" + // '}'
        "000000001c030000000000"; // '~'

    private static readonly byte[] Rows = Convert.FromHexString(Glyphs);

    /// <summary>Width in pixels of <paramref name="text"/> at <paramref name="scale"/>.</summary>
    public static int Measure(string text, int scale = 1) => text.Length * CellWidth * scale;

    /// <summary>Whether glyph row <paramref name="row"/>, column <paramref name="column"/> of <paramref name="c"/> is ink.</summary>
    public static bool Ink(char c, int column, int row)
    {
        if (c < 32 || c > 126) c = '?';
        return (Rows[(c - 32) * CellHeight + row] >> (CellWidth - 1 - column) & 1) != 0;
    }

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (<paramref name="x"/>, <paramref name="y"/>), each font pixel a <paramref name="scale"/>-pixel square; what falls outside the image is dropped.</summary>
    public static void Draw(RgbImage image, string text, int x, int y, (byte R, byte G, byte B) color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        for (int i = 0; i < text.Length; i++)
            for (int row = 0; row < CellHeight; row++)
                for (int col = 0; col < CellWidth; col++)
                    if (Ink(text[i], col, row))
                        Overlay.Fill(image, x + (i * CellWidth + col) * scale, y + row * scale, scale, scale, color);
    }
}
