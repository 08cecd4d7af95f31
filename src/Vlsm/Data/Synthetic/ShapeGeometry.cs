using Vlsm.Data.Prompts;

namespace Vlsm.Data.Synthetic;

/// <summary>
/// A shape in image coordinates, tested at pixel centres. Orientation is a unit vector
/// (<see cref="SeededRandom.NextDirection"/>), so no trigonometric call (whose last bits can
/// differ between math libraries) decides a pixel.
/// </summary>
internal abstract class ShapeGeometry
{
    public double CenterX { get; set; }
    public double CenterY { get; set; }

    /// <summary>Every inside point is within this distance of the centre.</summary>
    public abstract double Radius { get; }

    /// <summary>Is the point (in the shape's frame, centre at the origin) inside?</summary>
    protected abstract bool ContainsLocal(double dx, double dy);

    public bool Contains(double x, double y) => ContainsLocal(x - CenterX, y - CenterY);

    /// <summary>Scales the shape about its centre (to shrink it when it does not fit).</summary>
    public abstract void Scale(double factor);

    /// <summary>Pixel rows and columns (inclusive, clipped to the image) that can hold inside points.</summary>
    private (int X0, int X1, int Y0, int Y1) Bounds(int size) =>
        (Math.Max(0, (int)Math.Floor(CenterX - Radius - 1)), Math.Min(size - 1, (int)Math.Ceiling(CenterX + Radius + 1)),
         Math.Max(0, (int)Math.Floor(CenterY - Radius - 1)), Math.Min(size - 1, (int)Math.Ceiling(CenterY + Radius + 1)));

    /// <summary>Does any pixel of the shape fall on a taken pixel? Cheaper than rasterising, for trying positions.</summary>
    public bool Overlaps(bool[] taken, int size)
    {
        var (x0, x1, y0, y1) = Bounds(size);
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
                if (taken[y * size + x] && Contains(x + 0.5, y + 0.5)) return true;
        return false;
    }

    /// <summary>Rasterises at pixel centres, keeping only the largest 4-connected piece so the object is one component.</summary>
    public BinaryMask Rasterize(int size)
    {
        var mask = new BinaryMask(size, size);
        var (x0, x1, y0, y1) = Bounds(size);
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
                if (Contains(x + 0.5, y + 0.5)) mask[x, y] = true;
        var labels = ConnectedComponents.Label(mask);
        if (labels.Components.Count <= 1) return mask;
        // Sharp tips can touch the rest of the shape only at a corner; such slivers would count as extra objects.
        var largest = labels.Components.MaxBy(c => c.PixelCount)!;
        return labels.MaskOf(largest.Label);
    }
}

internal sealed class Disc(double radius) : ShapeGeometry
{
    private double radius = radius;
    public override double Radius => radius;
    protected override bool ContainsLocal(double dx, double dy) => dx * dx + dy * dy <= radius * radius;
    public override void Scale(double factor) => radius *= factor;
}

/// <summary>An ellipse with semi-axes <c>a ≥ b</c>, major axis along (cos, sin).</summary>
internal sealed class Ellipse(double a, double b, (double Cos, double Sin) direction) : ShapeGeometry
{
    private double a = a, b = b;
    public override double Radius => Math.Max(a, b);

    protected override bool ContainsLocal(double dx, double dy)
    {
        double u = direction.Cos * dx + direction.Sin * dy, v = -direction.Sin * dx + direction.Cos * dy;
        return u * u / (a * a) + v * v / (b * b) <= 1;
    }

    public override void Scale(double factor)
    {
        a *= factor;
        b *= factor;
    }
}

/// <summary>A square of half-side <c>h</c>, rotated to (cos, sin).</summary>
internal sealed class Square(double half, (double Cos, double Sin) direction) : ShapeGeometry
{
    private double half = half;
    public override double Radius => half * Math.Sqrt(2);

    protected override bool ContainsLocal(double dx, double dy)
    {
        double u = direction.Cos * dx + direction.Sin * dy, v = -direction.Sin * dx + direction.Cos * dy;
        return Math.Abs(u) <= half && Math.Abs(v) <= half;
    }

    public override void Scale(double factor) => half *= factor;
}

/// <summary>An equilateral triangle with circumradius <c>r</c>, one vertex towards (cos, sin).</summary>
internal sealed class Triangle(double circumradius, (double Cos, double Sin) direction) : ShapeGeometry
{
    private double circumradius = circumradius;
    public override double Radius => circumradius;

    protected override bool ContainsLocal(double dx, double dy)
    {
        // Inside iff on the inner side of the three edges; each edge is at distance r/2 from the
        // centre, with outward normals at the vertex direction rotated by 180°, ±60°.
        const double Cos120 = -0.5, Sin120 = 0.8660254037844386;
        double c = -direction.Cos, s = -direction.Sin; // normal of the edge opposite the first vertex
        for (int edge = 0; edge < 3; edge++)
        {
            if (c * dx + s * dy > circumradius / 2) return false;
            (c, s) = (c * Cos120 - s * Sin120, c * Sin120 + s * Cos120);
        }
        return true;
    }

    public override void Scale(double factor) => circumradius *= factor;
}

/// <summary>A disc with round lobes on its rim: a bumpy, irregular blob.</summary>
internal sealed class LobedBlob : ShapeGeometry
{
    private double core;
    private readonly (double X, double Y, double R)[] lobes;

    public LobedBlob(double core, (double X, double Y, double R)[] lobes)
    {
        this.core = core;
        this.lobes = lobes;
    }

    public override double Radius => Math.Max(core, lobes.Max(l => Math.Sqrt(l.X * l.X + l.Y * l.Y) + l.R));

    protected override bool ContainsLocal(double dx, double dy)
    {
        if (dx * dx + dy * dy <= core * core) return true;
        foreach (var (x, y, r) in lobes)
            if ((dx - x) * (dx - x) + (dy - y) * (dy - y) <= r * r) return true;
        return false;
    }

    public override void Scale(double factor)
    {
        core *= factor;
        for (int i = 0; i < lobes.Length; i++)
            lobes[i] = (lobes[i].X * factor, lobes[i].Y * factor, lobes[i].R * factor);
    }
}
