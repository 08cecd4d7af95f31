using Microsoft.Playwright;
using Vlsm.Imaging;

namespace Vlsm.Tests;

/// <summary>
/// The page of <c>vlsm serve</c> in a real browser: Playwright drives Debian's chromium (installed by
/// tests/setup/chromium.sh, which ./test.sh runs) against the serve command on a free loopback port.
/// </summary>
public sealed class ServePageTests : IDisposable
{
    private const string Chromium = "/usr/bin/chromium";
    private readonly string work = Directory.CreateTempSubdirectory("vlsm-page-").FullName;

    public void Dispose() => Directory.Delete(work, recursive: true);

    private static async Task<(IPlaywright, IBrowser)> Launch()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing; run tests/setup/chromium.sh (./test.sh does) to install Debian's chromium.");
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        return (playwright, browser);
    }

    private static async Task<int> Area(IPage page) => int.Parse(await page.GetAttributeAsync("#results figure", "data-area") ?? "-1");

    [Fact]
    public async Task Upload_prompt_overlay_threshold_and_a_4xx_for_a_text_file()
    {
        string image = Path.Combine(work, "scan.png");
        File.WriteAllBytes(image, UploadImages.Png(96, 72));
        string text = Path.Combine(work, "notes.png");
        File.WriteAllText(text, "patient notes, not an image\n");

        using var serve = new ServeProcess("--model", "tiny=" + Path.Combine(Fixtures.Parity, "clipseg-tiny"), "--model", "unet=" + Path.Combine(Fixtures.Parity, "smp-unet-tiny"));
        var (playwright, browser) = await Launch();
        try
        {
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1366, Height = 768 } });
            await page.GotoAsync(serve.BaseUrl + "/");
            await page.WaitForSelectorAsync("#model option[value='tiny']", new PageWaitForSelectorOptions { State = WaitForSelectorState.Attached });
            Assert.Contains("CLIPSeg", await page.InnerTextAsync("#model-facts"));

            // A template from the attributes, through the server's p0-p9.
            await page.ClickAsync("#templates summary");
            await page.SelectOptionAsync("#t-key", "p6");
            await page.ClickAsync("#fill");
            await page.WaitForFunctionAsync("document.getElementById('prompt-1').value.length > 0");
            Assert.Equal("one small pink round polyp, located in top left of the image", await page.InputValueAsync("#prompt-1"));

            // Upload, type a prompt, submit with the keyboard, wait for the overlay.
            await page.SetInputFilesAsync("#image", image);
            await page.FillAsync("#prompt-1", "small pink polyp");
            await page.FillAsync("#prompt-2", "large round polyp at the bottom");
            await page.FocusAsync("#prompt-1");
            await page.Keyboard.PressAsync("Enter");
            await page.WaitForSelectorAsync("#results figure canvas");
            Assert.Equal(2, await page.Locator("#results figure").CountAsync());
            Assert.Equal(96, await page.EvalOnSelectorAsync<int>("#results figure canvas", "c => c.width"));
            int atHalf = await Area(page);
            string pixelsAtHalf = await page.EvalOnSelectorAsync<string>("#results figure canvas", "c => c.toDataURL()");

            // The threshold slider re-thresholds the last probabilities: no new request, a new mask.
            int requests = 0;
            page.Request += (_, r) => { if (r.Url.Contains("/v1/segment")) requests++; };
            await page.FocusAsync("#threshold");
            await page.Keyboard.PressAsync("Home");
            int atZero = await Area(page);
            await page.Keyboard.PressAsync("End");
            int atOne = await Area(page);
            Assert.Equal("1.00", await page.InnerTextAsync("#threshold-value"));
            Assert.Equal(0, atOne);
            Assert.True(atZero > atOne, $"moving the threshold from 0 to 1 left the mask at {atZero} pixels");
            Assert.InRange(atHalf, atOne, atZero);
            Assert.NotEqual(pixelsAtHalf, await page.EvalOnSelectorAsync<string>("#results figure canvas", "c => c.toDataURL()"));
            Assert.Equal(0, requests);

            // Back to the page's default view for the screenshot in docs/.
            await page.FillAsync("#threshold", "0.5");
            await page.CheckAsync("#heatmap");
            await page.UncheckAsync("#heatmap");
            await page.ClickAsync("#templates summary");
            await page.EvaluateAsync("window.scrollTo(0, 0)");
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = Environment.GetEnvironmentVariable("VLSM_PAGE_SCREENSHOT") ?? Path.Combine(work, "page.png") });

            // A text file chosen as the image: the server's 4xx, naming the field, on the page.
            await page.SetInputFilesAsync("#image", text);
            await page.ClickAsync("#segment");
            await page.WaitForSelectorAsync("#status:not([hidden])");
            await page.WaitForFunctionAsync("document.getElementById('status').textContent.startsWith('image:')");
            Assert.Contains("not an image", await page.InnerTextAsync("#status"));

            // A model that reads no text: the prompts go away, and an image segments without one.
            await page.SelectOptionAsync("#model", "unet");
            Assert.False(await page.IsVisibleAsync("#prompt-box"));
            Assert.Contains("reads no text", await page.InnerTextAsync("#model-facts"));
            string square = Path.Combine(work, "square.png");
            File.WriteAllBytes(square, UploadImages.Png(80, 80));
            await page.SetInputFilesAsync("#image", square);
            await page.ClickAsync("#segment");
            await page.WaitForSelectorAsync("#results figure canvas");
            Assert.Equal("mask", await page.InnerTextAsync("#results figcaption span:first-child"));
        }
        finally
        {
            await browser.CloseAsync();
            playwright.Dispose();
        }
    }
}
