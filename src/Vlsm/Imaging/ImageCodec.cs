using System.Buffers;
using SkiaSharp;

namespace Vlsm.Imaging;

/// <summary>
/// Reads images the way the Python reference does with Pillow
/// (<c>ImageOps.exif_transpose(Image.open(p)).convert("RGB")</c> or <c>.convert("L")</c>)
/// and writes lossless PNGs.
/// </summary>
/// <remarks>
/// Decoding uses Skia's codecs (PNG, JPEG, BMP, GIF, WebP, ICO, WBMP; baseline TIFF through <see cref="TiffReader"/>) into an unpremultiplied
/// buffer with no colour-space conversion, so the RGB values are the stored values, as in Pillow,
/// which does no colour management and ignores alpha when converting to RGB.
/// 16-bit grayscale PNGs are read by <see cref="PngGray16"/> to get Pillow's clipping to 255.
/// </remarks>
public static class ImageCodec
{
    /// <summary>Decodes any supported image to 8-bit RGB, upright according to its EXIF orientation.</summary>
    /// <exception cref="VlsmException">The file is missing, unreadable, truncated, corrupt or not a supported format.</exception>
    public static RgbImage DecodeRgb(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var decoded = Decode(path);
        return ToRgb(decoded);
    }

    private static RgbImage ToRgb(Decoded decoded)
    {
        var rgb = new byte[(long)decoded.Width * decoded.Height * 3];
        var map = OrientationMap.For(decoded.Origin, decoded.Width, decoded.Height);
        int w = decoded.Width;
        decoded.ReadRows((rows, y0, count) =>
        {
            if (decoded.IsGray) PackGrayToRgb(rows, w, y0, count, rgb, map);
            else PackRgbaToRgb(rows, w, y0, count, rgb, map);
        });
        return new RgbImage(map.OutWidth, map.OutHeight, rgb);
    }

    /// <summary>
    /// The stored size of the image at <paramref name="path"/> from its header alone (before EXIF
    /// orientation; the pixel count is the same), or null when the file cannot be opened or is not an
    /// image Skia recognises (TIFF included): callers use it only to plan memory.
    /// </summary>
    public static (int Width, int Height)? PeekSize(string path)
    {
        try
        {
            using var stream = new SKFileStream(path);
            if (!stream.IsValid) return null;
            using var codec = SKCodec.Create(stream);
            return codec is null ? null : (codec.Info.Width, codec.Info.Height);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Decodes image bytes (an upload) as <see cref="DecodeRgb(string)"/> decodes a file; <paramref name="name"/> names it in messages.</summary>
    /// <exception cref="VlsmException">The bytes are empty, truncated, corrupt or not a supported format.</exception>
    public static RgbImage DecodeRgb(byte[] bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        if (bytes.Length == 0) throw new VlsmException($"Image '{name}' is empty (0 bytes).");
        Decoded decoded;
        try
        {
            decoded = DecodeBytes(name, bytes);
        }
        catch (Exception e) when (e is not VlsmException and not OutOfMemoryException)
        {
            throw new VlsmException($"Cannot decode image '{name}': {e.Message}. Send a PNG or JPEG image.", e);
        }
        using (decoded) return ToRgb(decoded);
    }

    /// <summary>A lossless 8-bit grayscale PNG in memory.</summary>
    public static byte[] EncodePng(GrayImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Gray8, SKAlphaType.Opaque);
        return Encode(info, image.Pixels, image.Width);
    }

    /// <summary>A lossless 8-bit RGB PNG in memory.</summary>
    public static byte[] EncodePng(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int count = image.Width * image.Height;
        var rgbx = new byte[count * 4];
        for (int i = 0, s = 0, d = 0; i < count; i++, s += 3, d += 4)
        {
            rgbx[d] = image.Pixels[s];
            rgbx[d + 1] = image.Pixels[s + 1];
            rgbx[d + 2] = image.Pixels[s + 2];
            rgbx[d + 3] = 255;
        }
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgb888x, SKAlphaType.Opaque);
        return Encode(info, rgbx, image.Width * 4);
    }

    private static unsafe byte[] Encode(SKImageInfo info, byte[] pixels, int rowBytes)
    {
        fixed (byte* p = pixels)
        {
            using var pixmap = new SKPixmap(info, (IntPtr)p, rowBytes);
            using var png = pixmap.Encode(SKEncodedImageFormat.Png, 100)
                ?? throw new VlsmException($"the PNG encoder failed for a {info.Width}x{info.Height} image.");
            return png.ToArray();
        }
    }

    /// <summary>
    /// Decodes a mask to one channel: a grayscale file gives its stored values; a colour file gives
    /// Pillow's <c>convert("L")</c> luminance, <c>(R*19595 + G*38470 + B*7471 + 0x8000) &gt;&gt; 16</c>.
    /// EXIF orientation is applied.
    /// </summary>
    /// <exception cref="VlsmException">The file is missing, unreadable, truncated, corrupt or not a supported format.</exception>
    public static GrayImage DecodeGray(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var decoded = Decode(path);
        var map = OrientationMap.For(decoded.Origin, decoded.Width, decoded.Height);
        // An upright gray image decoded into a buffer of its own is the result: no second copy of a large mask.
        if (decoded.IsGray && map.IsIdentity && decoded.TakeExactBuffer() is { } own) return new GrayImage(decoded.Width, decoded.Height, own);
        var gray = new byte[(long)decoded.Width * decoded.Height];
        int w = decoded.Width;
        decoded.ReadRows((rows, y0, count) =>
        {
            if (decoded.IsGray) PackGray(rows, w, y0, count, gray, map);
            else PackRgbaToLuma(rows, w, y0, count, gray, map);
        });
        return new GrayImage(map.OutWidth, map.OutHeight, gray);
    }

    /// <summary>Writes a lossless 8-bit grayscale PNG, atomically (a temporary file renamed over <paramref name="path"/>).</summary>
    /// <exception cref="VlsmException">The file cannot be written.</exception>
    public static void SavePng(string path, GrayImage image)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(image);
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Gray8, SKAlphaType.Opaque);
        EncodeAndWrite(path, info, image.Pixels, image.Width);
    }

    /// <summary>Writes a lossless 8-bit RGB PNG, atomically (a temporary file renamed over <paramref name="path"/>).</summary>
    /// <exception cref="VlsmException">The file cannot be written.</exception>
    public static void SavePng(string path, RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(image);
        int count = image.Width * image.Height;
        // Pool the usual sizes; a huge image's buffer is left to the collector rather than kept in the pool for good.
        bool pooled = count * 4L <= MaxPooledBytes;
        byte[] rgbx = pooled ? ArrayPool<byte>.Shared.Rent(count * 4) : new byte[count * 4L];
        try
        {
            ReadOnlySpan<byte> src = image.Pixels;
            Span<byte> dst = rgbx.AsSpan(0, count * 4);
            for (int i = 0, s = 0, d = 0; i < count; i++, s += 3, d += 4)
            {
                dst[d] = src[s];
                dst[d + 1] = src[s + 1];
                dst[d + 2] = src[s + 2];
                dst[d + 3] = 255;
            }
            var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgb888x, SKAlphaType.Opaque);
            EncodeAndWrite(path, info, rgbx, image.Width * 4);
        }
        finally
        {
            if (pooled) ArrayPool<byte>.Shared.Return(rgbx);
        }
    }

    private static unsafe void EncodeAndWrite(string path, SKImageInfo info, byte[] pixels, int rowBytes)
    {
        SKData? png;
        fixed (byte* p = pixels)
        {
            using var pixmap = new SKPixmap(info, (IntPtr)p, rowBytes);
            png = pixmap.Encode(SKEncodedImageFormat.Png, 100);
        }
        if (png is null)
            throw new VlsmException($"Cannot write '{path}': the PNG encoder failed for a {info.Width}x{info.Height} image.");
        using (png)
        {
            try
            {
                string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
                if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
                Vlsm.IO.AtomicFile.Write(path, stream => stream.Write(png.AsSpan()));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
            {
                throw new VlsmException(
                    $"Cannot write '{path}': {e.Message} Check that the folder is writable and the disk is not full.", e);
            }
        }
    }

    // ---------------------------------------------------------------- decoding

    /// <summary>Receives decoded rows <paramref name="firstRow"/> .. firstRow + <paramref name="count"/> - 1, packed (width × bytes per pixel each).</summary>
    private delegate void RowsAction(ReadOnlySpan<byte> rows, int firstRow, int count);

    /// <summary>
    /// Decoded pixels before orientation: one byte per pixel (gray) or four (RGBA, unpremultiplied),
    /// either in one buffer or, for a large image, read from the codec in strips of rows so that only
    /// the packed result is ever whole in memory (a 12000² RGBA buffer alone is 576 MB).
    /// </summary>
    private sealed class Decoded : IDisposable
    {
        private byte[] _buffer;
        private readonly bool _pooled;
        private readonly StripSource? _strips;

        public Decoded(int width, int height, bool isGray, byte[] buffer, bool pooled, SKEncodedOrigin origin)
        {
            Width = width;
            Height = height;
            IsGray = isGray;
            Origin = origin;
            _buffer = buffer;
            _pooled = pooled;
        }

        public Decoded(int width, int height, bool isGray, StripSource strips, SKEncodedOrigin origin)
            : this(width, height, isGray, [], pooled: false, origin) => _strips = strips;

        public int Width { get; }
        public int Height { get; }
        public bool IsGray { get; }
        public SKEncodedOrigin Origin { get; }

        /// <summary>Hands every row to <paramref name="action"/>, top to bottom.</summary>
        public void ReadRows(RowsAction action)
        {
            if (_strips is not null) _strips.Read(action);
            else action(_buffer.AsSpan(0, Width * Height * (IsGray ? 1 : 4)), 0, Height);
        }

        /// <summary>The whole buffer when it is exactly the pixels and owned by nobody else (then this no longer holds it); else null.</summary>
        public byte[]? TakeExactBuffer()
        {
            if (_strips is not null || _pooled || _buffer.LongLength != (long)Width * Height * (IsGray ? 1 : 4)) return null;
            var buffer = _buffer;
            _buffer = [];
            return buffer;
        }

        public void Dispose()
        {
            if (_pooled && _buffer.Length > 0) ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = [];
            _strips?.Dispose();
        }
    }

    /// <summary>A codec in scanline mode, read in strips of about <see cref="StripBytes"/> into a pooled buffer.</summary>
    private sealed class StripSource(string path, SKData data, SKCodec codec, SKImageInfo info, int? rows) : IDisposable
    {
        private const int StripBytes = 4 << 20;

        public unsafe void Read(RowsAction action)
        {
            int rowBytes = info.RowBytes;
            int rowsPerStrip = rows ?? Math.Max(1, StripBytes / rowBytes);
            byte[] strip = ArrayPool<byte>.Shared.Rent(rowsPerStrip * rowBytes);
            try
            {
                for (int y = 0; y < info.Height; y += rowsPerStrip)
                {
                    int count = Math.Min(rowsPerStrip, info.Height - y);
                    int read;
                    fixed (byte* p = strip)
                        read = codec.GetScanlines((IntPtr)p, count, rowBytes);
                    if (read != count)
                        throw new VlsmException($"Cannot decode image '{path}': the file is truncated (the image data ends early, at row {y + read} of {info.Height}). Re-export or re-copy it.");
                    action(strip.AsSpan(0, count * rowBytes), y, count);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(strip);
            }
        }

        public void Dispose()
        {
            codec.Dispose();
            data.Dispose();
        }
    }

    private sealed record StripSetting(long AboveBytes, int Rows);

    private static readonly AsyncLocal<StripSetting?> StripOverride = new();

    /// <summary>
    /// For tests: within the returned scope (on this flow), colour images above <paramref name="aboveBytes"/>
    /// of RGBA are read in strips of <paramref name="rows"/> rows, so the strip path can be checked on small images.
    /// </summary>
    internal static IDisposable StripDecoding(long aboveBytes, int rows)
    {
        var previous = StripOverride.Value;
        StripOverride.Value = new StripSetting(aboveBytes, rows);
        return new OnDispose(() => StripOverride.Value = previous);
    }

    /// <summary>Pillow refuses images above twice <c>Image.MAX_IMAGE_PIXELS</c> (DecompressionBombError); so do we.</summary>
    internal const long MaxDecodePixels = 2L * 89_478_485;

    private const int MaxPooledBytes = 64 << 20;

    private static Decoded Decode(string path)
    {
        byte[] bytes = ReadFile(path);
        try
        {
            return DecodeBytes(path, bytes);
        }
        catch (Exception e) when (e is not VlsmException and not OutOfMemoryException)
        {
            throw new VlsmException(
                $"Cannot decode image '{path}': {e.Message}. Check that the file is a valid PNG, JPEG or BMP image (re-export it if needed).", e);
        }
    }

    private static byte[] ReadFile(string path)
    {
        if (Directory.Exists(path))
            throw new VlsmException($"Cannot read image '{path}': it is a folder, not a file. Give the path of an image file.");
        if (!File.Exists(path))
            throw new VlsmException($"Image file '{path}' does not exist. Check the path and the dataset folder it is relative to.");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new VlsmException($"Cannot read image file '{path}': {e.Message} Check that it exists and is readable.", e);
        }
        if (bytes.Length == 0)
            throw new VlsmException($"Image file '{path}' is empty (0 bytes). Replace it with a valid image.");
        return bytes;
    }

    private static unsafe Decoded DecodeBytes(string path, byte[] bytes)
    {
        if (PngGray16.ImpossibleSize(bytes) is { } impossible)
            throw new VlsmException($"Cannot decode image '{path}': {impossible}. Re-export the file.");
        if (TiffReader.Matches(bytes)) return DecodeTiff(path, bytes);
        var data = SKData.CreateCopy(bytes);
        SKCodec? codec = null;
        bool handedOver = false; // to a StripSource, which disposes both
        try
        {
            codec = SKCodec.Create(new SKMemoryStream(data), out var created);
            return DecodeWith(path, bytes, data, codec, created, out handedOver);
        }
        finally
        {
            if (!handedOver)
            {
                codec?.Dispose();
                data.Dispose();
            }
        }
    }

    private static unsafe Decoded DecodeWith(string path, byte[] bytes, SKData data, SKCodec? codec, SKCodecResult created, out bool handedOver)
    {
        handedOver = false;
        if (codec is null)
        {
            throw new VlsmException(created switch
            {
                SKCodecResult.IncompleteInput =>
                    $"Cannot decode image '{path}': the file is truncated (it ends inside the image header). Re-export or re-copy it.",
                SKCodecResult.Unimplemented or SKCodecResult.InvalidInput =>
                    $"Cannot decode image '{path}': it is not in an image format vlsm reads (PNG, JPEG, BMP, GIF, WebP, ICO, baseline TIFF). Convert it to PNG.",
                _ =>
                    $"Cannot decode image '{path}': the file is corrupt or not an image ({Describe(created)}). Re-export it as PNG or JPEG.",
            });
        }

        var origin = codec.EncodedOrigin;
        if ((int)origin < 1 || (int)origin > 8) origin = SKEncodedOrigin.TopLeft;
        int width = codec.Info.Width, height = codec.Info.Height;
        if (width <= 0 || height <= 0)
            throw new VlsmException($"Cannot decode image '{path}': its header gives an invalid size {width}x{height}. Re-export the file.");
        if ((long)width * height > MaxDecodePixels)
            throw new VlsmException(
                $"Cannot decode image '{path}': it is {width}x{height} pixels, more than the {MaxDecodePixels} vlsm (like Pillow) accepts; "
                + "the header may be corrupt. Downscale the image or re-export it.");

        if (PngGray16.Matches(bytes))
        {
            byte[] gray16;
            try
            {
                gray16 = PngGray16.Decode(bytes, out int w16, out int h16);
                if (w16 != width || h16 != height) throw new InvalidDataException("inconsistent PNG header");
            }
            catch (InvalidDataException e)
            {
                throw new VlsmException($"Cannot decode image '{path}': {e.Message}. Re-export or re-copy the file.", e);
            }
            return new Decoded(width, height, isGray: true, gray16, pooled: false, origin);
        }

        bool isGray = codec.Info.ColorType == SKColorType.Gray8;
        var info = isGray
            ? new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque)
            : new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        long size = (long)width * height * (isGray ? 1 : 4);
        // A large colour image is read in strips straight into its RGB or gray result when the codec reads
        // top-down scanlines (JPEG; Skia's PNG codec has no scanline mode); the others, and gray images
        // (whose buffer is the result), decode whole.
        var strips = StripOverride.Value;
        if (!isGray && size > (strips?.AboveBytes ?? MaxPooledBytes) && codec.ScanlineOrder == SKCodecScanlineOrder.TopDown
            && codec.StartScanlineDecode(info) == SKCodecResult.Success)
        {
            handedOver = true;
            return new Decoded(width, height, isGray, new StripSource(path, data, codec, info, strips?.Rows), origin);
        }
        // Pool the usual sizes (training images are decoded over and over); do not let a huge
        // image pin its buffer in the pool.
        bool pooled = size <= MaxPooledBytes;
        byte[] buffer = pooled ? ArrayPool<byte>.Shared.Rent((int)size) : new byte[size];
        var decoded = new Decoded(width, height, isGray, buffer, pooled, origin);
        try
        {
            SKCodecResult result;
            fixed (byte* p = buffer)
                result = codec.GetPixels(info, (IntPtr)p);
            if (result != SKCodecResult.Success)
            {
                throw new VlsmException(result switch
                {
                    SKCodecResult.IncompleteInput =>
                        $"Cannot decode image '{path}': the file is truncated (the image data ends early). Re-export or re-copy it.",
                    SKCodecResult.ErrorInInput =>
                        $"Cannot decode image '{path}': the image data is corrupt. Re-export or re-copy it.",
                    _ =>
                        $"Cannot decode image '{path}': the decoder failed ({Describe(result)}). Convert the file to an 8-bit PNG.",
                });
            }
            return decoded;
        }
        catch
        {
            decoded.Dispose();
            throw;
        }
    }

    /// <summary>Skia has no TIFF codec: baseline TIFF goes through <see cref="TiffReader"/>.</summary>
    private static Decoded DecodeTiff(string path, byte[] bytes)
    {
        TiffReader.Image tiff;
        try
        {
            tiff = TiffReader.Decode(bytes, MaxDecodePixels);
        }
        catch (InvalidDataException e)
        {
            throw new VlsmException($"Cannot decode image '{path}': {e.Message}.", e);
        }
        return new Decoded(tiff.Width, tiff.Height, tiff.IsGray, tiff.Pixels, pooled: false, (SKEncodedOrigin)tiff.Orientation);
    }

    private static string Describe(SKCodecResult result) => result switch
    {
        SKCodecResult.InvalidConversion => "unsupported pixel format",
        SKCodecResult.InvalidScale => "unsupported scale",
        SKCodecResult.InvalidParameters => "invalid parameters",
        SKCodecResult.InvalidInput => "invalid input",
        SKCodecResult.CouldNotRewind => "could not rewind",
        SKCodecResult.InternalError => "internal decoder error",
        SKCodecResult.Unimplemented => "unsupported format",
        _ => result.ToString(),
    };

    // ---------------------------------------------------------------- orientation and packing

    /// <summary>
    /// Where source pixel (x, y) lands in the upright output: index <c>Origin + x*StepX + y*StepY</c>
    /// (in pixels). Reproduces Pillow's <c>ImageOps.exif_transpose</c>: 2 mirror, 3 rotate 180,
    /// 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise.
    /// </summary>
    internal readonly record struct OrientationMap(int OutWidth, int OutHeight, long Origin, long StepX, long StepY)
    {
        public bool IsIdentity => StepX == 1 && Origin == 0;

        public static OrientationMap For(SKEncodedOrigin origin, int w, int h) => (int)origin switch
        {
            2 => new(w, h, w - 1, -1, w),
            3 => new(w, h, (long)(h - 1) * w + w - 1, -1, -w),
            4 => new(w, h, (long)(h - 1) * w, 1, -w),
            5 => new(h, w, 0, h, 1),
            6 => new(h, w, h - 1, h, -1),
            7 => new(h, w, (long)(w - 1) * h + h - 1, -h, -1),
            8 => new(h, w, (long)(w - 1) * h, -h, 1),
            _ => new(w, h, 0, 1, w),
        };
    }

    // The packers write source rows y0 .. y0 + rows - 1 (given packed in src) to their upright places in dst.

    private static void PackGray(ReadOnlySpan<byte> src, int w, int y0, int rows, byte[] dst, OrientationMap map)
    {
        if (map.IsIdentity)
        {
            src[..(w * rows)].CopyTo(dst.AsSpan().Slice(checked(y0 * w), w * rows));
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<byte> row = src.Slice(r * w, w);
            long d = map.Origin + (y0 + r) * map.StepY;
            for (int x = 0; x < w; x++, d += map.StepX) dst[d] = row[x];
        }
    }

    private static void PackGrayToRgb(ReadOnlySpan<byte> src, int w, int y0, int rows, byte[] dst, OrientationMap map)
    {
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<byte> row = src.Slice(r * w, w);
            long d = map.Origin + (y0 + r) * map.StepY;
            for (int x = 0; x < w; x++, d += map.StepX)
            {
                byte v = row[x];
                long o = d * 3;
                dst[o] = v;
                dst[o + 1] = v;
                dst[o + 2] = v;
            }
        }
    }

    private static void PackRgbaToRgb(ReadOnlySpan<byte> src, int w, int y0, int rows, byte[] dst, OrientationMap map)
    {
        if (map.IsIdentity)
        {
            int count = w * rows;
            Span<byte> t = dst.AsSpan().Slice(checked(y0 * w * 3), count * 3);
            for (int i = 0, si = 0, di = 0; i < count; i++, si += 4, di += 3)
            {
                t[di] = src[si];
                t[di + 1] = src[si + 1];
                t[di + 2] = src[si + 2];
            }
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<byte> row = src.Slice(r * w * 4, w * 4);
            long d = map.Origin + (y0 + r) * map.StepY;
            for (int x = 0; x < w; x++, d += map.StepX)
            {
                long o = d * 3;
                dst[o] = row[4 * x];
                dst[o + 1] = row[4 * x + 1];
                dst[o + 2] = row[4 * x + 2];
            }
        }
    }

    /// <summary>Pillow's <c>rgb2l</c>: ITU-R 601-2 luma in 16-bit fixed point, rounded half up.</summary>
    internal static byte Luma(byte r, byte g, byte b) => (byte)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);

    private static void PackRgbaToLuma(ReadOnlySpan<byte> src, int w, int y0, int rows, byte[] dst, OrientationMap map)
    {
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<byte> row = src.Slice(r * w * 4, w * 4);
            long d = map.Origin + (y0 + r) * map.StepY;
            for (int x = 0; x < w; x++, d += map.StepX)
                dst[d] = Luma(row[4 * x], row[4 * x + 1], row[4 * x + 2]);
        }
    }
}
