using TorchSharp;
using static TorchSharp.torch;

namespace Vlsm.Tests;

// The build patches libLibTorchSharp.so where the system libstdc++ is too old
// (Directory.Build.targets); if that step fails, every torch call here throws.
public class TorchSharpLoadsTests
{
    [Fact]
    public void MatrixProductComputesOnCpu()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var b = tensor(new float[] { 5, 6, 7, 8 }).reshape(2, 2);
        using var c = a.matmul(b);
        Assert.Equal(new float[] { 19, 22, 43, 50 }, c.data<float>().ToArray());
    }
}
